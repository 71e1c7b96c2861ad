package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console"
)

var errNotLoggedIn = errors.New("not logged in: run 'palisade login', or set PALISADE_URL and PALISADE_TOKEN (and PALISADE_CA)")

// apiError is an error response from the console.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("console says (%d): %s", e.status, e.msg) }

// client calls the user API with an API token.
type client struct {
	base  string
	token string
	http  *http.Client
}

// cliConfigPath is where 'palisade login' saves credentials.
func cliConfigPath() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "palisade", "cli.json")
	}
	return ""
}

// loadCLIConfig finds credentials: environment, then the user's config, then the console's
// data directory (written on first start for the local admin).
func loadCLIConfig() (console.CLIConfig, error) {
	if u, t := os.Getenv("PALISADE_URL"), os.Getenv("PALISADE_TOKEN"); u != "" && t != "" {
		return console.CLIConfig{URL: u, Token: t, CAFile: os.Getenv("PALISADE_CA")}, nil
	}
	dataDir := os.Getenv("PALISADE_DATA_DIR")
	if dataDir == "" {
		dataDir = "data"
	}
	for _, p := range []string{cliConfigPath(), filepath.Join(dataDir, "cli.json")} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return console.CLIConfig{}, err
		}
		var c console.CLIConfig
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("parse %s: %w", p, err)
		}
		return c, nil
	}
	return console.CLIConfig{}, errNotLoggedIn
}

func httpClient(caFile string) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}, nil
}

func newClient() (*client, error) {
	c, err := loadCLIConfig()
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(c.CAFile)
	if err != nil {
		return nil, err
	}
	return &client{base: c.URL, token: c.Token, http: hc}, nil
}

// call is newClient then do, for commands that make one request.
func call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, query, in, out)
}

// doRaw sends a non-JSON body, streamed, and decodes the JSON answer.
func (c *client) doRaw(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.send(req, out)
}

// do sends a request with a JSON body (when in is not nil) and decodes the JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.send(req, out)
}

// send performs a request and decodes its JSON answer, turning error answers into apiError.
func (c *client) send(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach console: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return &apiError{status: resp.StatusCode, msg: e.Error}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// printJSON writes v indented, for --json output.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// doCSRF is do with a session's CSRF header, for the login exchange.
func (c *client) doCSRF(ctx context.Context, csrf, method, path string, in, out any) error {
	c.http.Transport = csrfTransport{csrf: csrf, next: c.http.Transport}
	defer func() { c.http.Transport = c.http.Transport.(csrfTransport).next }()
	return c.do(ctx, method, path, nil, in, out)
}

type csrfTransport struct {
	csrf string
	next http.RoundTripper
}

func (t csrfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-CSRF-Token", t.csrf)
	return t.next.RoundTrip(r)
}
