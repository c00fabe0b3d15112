// Command tlsserver is the application the local node's example and test Pods
// run: an HTTPS server whose certificate and key are the files of a mounted
// Secret, read again on every handshake, so a renewed certificate is served
// without a restart (the kubelet updates a Secret volume's files in place).
//
//	tlsserver [-cert FILE] [-key FILE] [-client-ca FILE] [-listen ADDR]
//	          [-peer HOST:PORT | -peer-file FILE] [-server-name NAME -ca FILE -every DURATION]
//
// With -client-ca it asks clients for a certificate signed by that bundle
// (mutual TLS), read again on every handshake too. With -peer (or -peer-file,
// a file holding HOST:PORT, read on each tick, so a mounted ConfigMap can
// name a Pod created later) it also dials the peer on each tick with its own
// certificate and verifies the peer against -ca. Every failed handshake is
// logged, on either side ("handshake with ... failed", "TLS handshake
// error"), and every tenth success a running count: the log is the record a
// test reads. GET /stats answers with both counts as JSON.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

type files struct{ cert, key string }

func (f files) load() (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("reading %s and %s: %w", f.cert, f.key, err)
	}
	return &pair, nil
}

func pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs := x509.NewCertPool()
	if !certs.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in " + path)
	}
	return certs, nil
}

var succeeded, failed atomic.Int64

func dial(own files, peer, serverName, caFile string) error {
	roots, err := pool(caFile)
	if err != nil {
		return err
	}
	config := &tls.Config{
		ServerName: serverName,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return own.load()
		},
	}
	// A request, not just a handshake: in TLS 1.3 the client's handshake ends
	// before the server has judged the client's certificate.
	client := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{TLSClientConfig: config, DisableKeepAlives: true},
	}
	response, err := client.Get("https://" + peer + "/")
	if err != nil {
		return err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", response.Status)
	}
	return nil
}

func main() {
	own := files{}
	flag.StringVar(&own.cert, "cert", "/etc/tls/tls.crt", "certificate chain (PEM)")
	flag.StringVar(&own.key, "key", "/etc/tls/tls.key", "private key (PEM)")
	clientCA := flag.String("client-ca", "", "require client certificates signed by this bundle")
	listen := flag.String("listen", ":8443", "address to serve HTTPS on")
	peer := flag.String("peer", "", "HOST:PORT to handshake with on every tick")
	peerFile := flag.String("peer-file", "", "file holding HOST:PORT, read on every tick")
	serverName := flag.String("server-name", "", "name the peer's certificate must carry")
	caFile := flag.String("ca", "/etc/trust/ca.crt", "bundle the peer's certificate must chain to")
	every := flag.Duration("every", time.Second, "how often to handshake with the peer")
	flag.Parse()

	config := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return own.load() },
	}
	if *clientCA != "" {
		config.ClientAuth = tls.RequireAndVerifyClientCert
		config.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			roots, err := pool(*clientCA)
			if err != nil {
				return nil, err
			}
			perClient := config.Clone()
			perClient.GetConfigForClient = nil
			perClient.ClientCAs = roots
			return perClient, nil
		}
	}
	if *peer != "" || *peerFile != "" {
		go func() {
			for range time.Tick(*every) {
				target := *peer
				if *peerFile != "" {
					content, err := os.ReadFile(*peerFile)
					if err != nil {
						continue
					}
					target = strings.TrimSpace(string(content))
				}
				if target == "" {
					continue
				}
				if err := dial(own, target, *serverName, *caFile); err != nil {
					failed.Add(1)
					log.Printf("handshake with %s failed: %v", target, err)
				} else if n := succeeded.Add(1); n%10 == 0 {
					log.Printf("handshakes with %s: %d succeeded, %d failed", target, n, failed.Load())
				}
			}
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]int64{"succeeded": succeeded.Load(), "failed": failed.Load()})
	})
	server := &http.Server{Addr: *listen, Handler: mux, TLSConfig: config, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("serving HTTPS on %s with %s", *listen, own.cert)
	log.Fatal(server.ListenAndServeTLS("", ""))
}
