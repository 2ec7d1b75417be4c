package security_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
)

// pki is a CA and a server certificate for 127.0.0.1, made for one test.
type pki struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "workq test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	p := pki{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key"),
		pool: x509.NewCertPool()}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", leafDER)
	writePEM(t, p.keyFile, "EC PRIVATE KEY", keyDER)
	p.pool.AddCert(caCert)
	return p
}

// startTLSRedis starts redis-server with TLS only (--port 0) and waits
// until it answers PING over TLS.
func startTLSRedis(t *testing.T, dir string, p pki) string {
	t.Helper()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", p.certFile, "--tls-key-file", p.keyFile, "--tls-ca-cert-file", p.caFile,
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.Eventually(t, 10*time.Second, "redis-server answers over TLS", func() (bool, string) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return false, err.Error() + "\n" + string(log)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return false, err.Error()
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "+PONG"), line
	})
	return addr
}

// TestTLSWithOwnCA runs workq over rediss:// against a redis-server that
// speaks only TLS, with a certificate from a CA made here: the CA is given
// with --redis-ca or WORKQ_REDIS_CA.
func TestTLSWithOwnCA(t *testing.T) {
	redistest.Available(t)
	dir := t.TempDir()
	p := newPKI(t, dir)
	addr := startTLSRedis(t, dir, p)
	url := "rediss://" + addr + "/0"
	bins := testkit.Build(t)
	co, wk := bins.Coordinator, bins.Worker

	t.Run("UntrustedCertificateIsRefusedWithAHint", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+url)
		r := c.run(1, co, "list")
		require.Contains(t, r.Stderr, "certificate signed by unknown authority")
		require.Contains(t, r.Stderr, "--redis-ca")
	})

	t.Run("PlainConnectionToTheTLSPortFails", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL=redis://"+addr+"/0")
		r := c.run(1, co, "list")
		require.Contains(t, r.Stderr, "redis unavailable")
	})

	t.Run("CAByFlagRunsAJob", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+url)
		c.run(0, co, "--redis-ca", p.caFile, "create", "tls-flag")
		c.run(0, co, "--redis-ca", p.caFile, "push", "tls-flag", "a", "b", "c", "--seal")
		c.run(0, wk, "--redis-ca", p.caFile, "--job", "tls-flag", "--", "cat")
		r := c.run(0, co, "--redis-ca", p.caFile, "watch", "tls-flag", "--interval", "50ms")
		require.Contains(t, r.Stdout, "3/3 items succeeded")
	})

	t.Run("CAByEnvironmentRunsAJob", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+url, "WORKQ_REDIS_CA="+p.caFile)
		c.run(0, co, "create", "tls-env")
		c.run(0, co, "push", "tls-env", "a", "b", "--seal")
		c.run(0, wk, "--job", "tls-env", "--batch-exec", "--", "cat")
		c.run(0, co, "watch", "tls-env", "--interval", "50ms")
	})

	t.Run("RunPassesTheCAToItsWorkers", func(t *testing.T) {
		c := newCLI(t)
		r := c.runIn(0, strings.NewReader("x\ny\nz\n"), co, "run", "--redis", url, "--redis-ca", p.caFile, "--job", "tls-run", "-p", "2", "--", "cat")
		require.Contains(t, r.Stderr, "3/3 items succeeded")
	})

	t.Run("CAFileWithoutACertificateIsAUsageError", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+url)
		r := c.run(2, co, "--redis-ca", p.keyFile, "list")
		require.Contains(t, r.Stderr, "holds no PEM certificate")
		r = c.run(2, co, "--redis-ca", filepath.Join(dir, "missing.pem"), "list")
		require.Contains(t, r.Stderr, "--redis-ca")
	})
}
