package revproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// testPKI makes a CA, a certificate for the proxy (localhost) and one for
// servers to present.
func testPKI(t *testing.T) (roots *x509.CertPool, proxyCert, serverCert tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "revproxy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	return roots, leaf(2, "proxy", x509.ExtKeyUsageServerAuth), leaf(3, "server 1", x509.ExtKeyUsageClientAuth)
}

// TestMutualTLS: over TLS, a server with a trusted certificate registers,
// one without is refused, a client without one sends, and a plain-TCP
// client gets nothing through.
func TestMutualTLS(t *testing.T) {
	roots, proxyCert, serverCert := testPKI(t)
	p := &Proxy{
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{proxyCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    roots,
		},
		RequireServerCert: true,
	}
	addr := startProxyWith(t, p)

	noCert := &Server{ID: "x", Policy: "P", ProxyAddr: addr, TLSConfig: &tls.Config{RootCAs: roots}}
	if err := noCert.Serve(testContext(t), nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("server without a certificate: Serve = %v, want ErrUnauthorized", err)
	}
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr,
		TLSConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{serverCert}}})
	if ids := ids(p.Servers("P")); len(ids) != 1 || ids[0] != "1" {
		t.Fatalf("registered: %v", ids)
	}

	c := &Client{ID: "50", ProxyAddr: addr, TLSConfig: &tls.Config{RootCAs: roots}}
	defer c.Close()
	reply, err := c.Send(testContext(t), "P", "over TLS")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySHA1("over TLS", reply); err != nil {
		t.Error(err)
	}

	plain := &Client{ID: "51", ProxyAddr: addr}
	defer plain.Close()
	if _, err := plain.Send(testContext(t), "P", "in the clear"); err == nil {
		t.Error("a plain-TCP client got through a TLS proxy")
	}
}
