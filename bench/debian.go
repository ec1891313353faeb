package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// findDebian returns the program bin of Debian's package pkg: on the PATH,
// or in /usr/sbin or /usr/bin. When it is missing and this process may (it
// runs as root) it installs the package with apt-get; otherwise, or when
// that fails, it returns a skipError, so the systems that need it are
// reported as skipped.
func findDebian(ctx context.Context, bin, pkg string) (string, error) {
	look := func() string {
		if p, err := exec.LookPath(bin); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			p := dir + "/" + bin
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
		return ""
	}
	if p := look(); p != "" {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", &skipError{fmt.Sprintf("%s is not installed (Debian package %s) and installing it needs root", bin, pkg)}
	}
	fmt.Fprintf(os.Stderr, "bench: installing %s with apt-get\n", pkg)
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update"}, {"install", "-y", pkg}} {
		cmd := exec.CommandContext(ictx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", &skipError{fmt.Sprintf("apt-get %s failed: %v: %s", strings.Join(args, " "), err, tail(out, 300))}
		}
	}
	if p := look(); p != "" {
		return p, nil
	}
	return "", &skipError{fmt.Sprintf("apt-get installed %s but %s is not on PATH, /usr/sbin or /usr/bin", pkg, bin)}
}
