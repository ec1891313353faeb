// Package httpproxy is revproxy's HTTP front door: the HTTP half of what
// people mean by "a proxy", served by one [Proxy], an [http.Handler] a
// program mounts in its own [http.Server] or runs with [Proxy.Serve].
//
// It serves, by what a request asks for:
//
//   - a forward proxy: absolute-form requests (GET http://host/path), as a
//     browser or curl -x sends them, fetched and streamed back, with
//     hop-by-hop headers removed both ways and Via added;
//   - CONNECT tunnels for HTTPS, to the ports allowed (443 by default);
//   - a reverse proxy by policy: requests mapped by host name or path
//     prefix ([Route]) to a policy of a [revproxy.Proxy], whose servers
//     announced an HTTP service when they registered, spread over them by
//     the policy's balancer;
//   - a gateway to message servers: POST /msg/{policy} sends the body as a
//     data message through a [revproxy.Client] and answers the reply's
//     payload.
//
// In front of all of it: client address allow and deny lists, optional
// proxy authentication, per-client rate limits; behind the forward and
// reverse paths, an optional shared [Cache].
package httpproxy
