package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// list fetches a page of T and prints it: as JSON, or as a table with one row of fields per
// item. It returns the page for callers that print more.
func list[T any](ctx context.Context, path string, q url.Values, asJSON bool, header string, row func(T) []string) (api.Page[T], error) {
	var p api.Page[T]
	if err := call(ctx, "GET", path, q, nil, &p); err != nil {
		return p, err
	}
	if asJSON {
		return p, printJSON(p)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, it := range p.Items {
		fmt.Fprintln(w, strings.Join(row(it), "\t"))
	}
	return p, w.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func runLogin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	u := fs.String("url", "https://127.0.0.1:8443", "console URL")
	user := fs.String("user", "admin", "user name")
	caFile := fs.String("ca", "", "console CA certificate file (ca.crt from the console's data directory)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	var pw string
	if *pwStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	} else if pw = os.Getenv("PALISADE_PASSWORD"); pw == "" {
		return usagef("login: give the password with --password-stdin or PALISADE_PASSWORD")
	}
	hc, err := httpClient(*caFile)
	if err != nil {
		return err
	}
	c := &client{base: strings.TrimRight(*u, "/"), http: hc}
	// Log in with a session, then mint an API token for the CLI and drop the session.
	hc.Jar, _ = cookiejar.New(nil)
	var lr api.LoginResponse
	if err := c.do(ctx, "POST", "/api/v1/login", nil, api.LoginRequest{User: *user, Password: pw}, &lr); err != nil {
		return err
	}
	host, _ := os.Hostname()
	var tok api.APITokenResponse
	if err := c.doCSRF(ctx, lr.CSRFToken, "POST", "/api/v1/api-tokens", api.APITokenRequest{Name: "cli-" + sanitize(host)}, &tok); err != nil {
		return err
	}
	c.doCSRF(ctx, lr.CSRFToken, "POST", "/api/v1/logout", nil, nil)
	abs := ""
	if *caFile != "" {
		abs, _ = filepath.Abs(*caFile)
	}
	path := cliConfigPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(console.CLIConfig{URL: c.base, CAFile: abs, Token: tok.Token}, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	fmt.Printf("Logged in as %s (%s); credentials saved in %s\n", lr.User, lr.Role, path)
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, s)
}

func runToken(ctx context.Context, args []string) error {
	return sub(ctx, "token", args, map[string]func(context.Context, []string) error{
		"create": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("token create", flag.ContinueOnError)
			ttl := fs.String("ttl", "24h", "how long the token stays valid")
			group := fs.String("group", "default", "host group the enrolled host joins")
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			var t api.EnrollTokenResponse
			if err := call(ctx, "POST", "/api/v1/enroll-tokens", nil, api.EnrollTokenRequest{TTL: *ttl, Group: *group}, &t); err != nil {
				return err
			}
			if *asJSON {
				return printJSON(t)
			}
			fmt.Printf("%s\n", t.Token)
			fmt.Fprintf(os.Stderr, "token %s for group %q, valid until %s; it enrolls one host.\n", t.ID, t.Group, ts(t.ExpiresAt))
			return nil
		},
		"list": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("token list", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			_, err := list(ctx, "/api/v1/enroll-tokens", nil, *asJSON, "ID\tGROUP\tCREATED BY\tEXPIRES\tUSED BY", func(t store.EnrollToken) []string {
				return []string{t.ID, t.Group, t.CreatedBy, ts(t.ExpiresAt), orDash(t.UsedBy)}
			})
			return err
		},
		"delete": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("token delete", flag.ContinueOnError)
			pos, err := parse(fs, args, 1, "a token ID")
			if err != nil {
				return err
			}
			return call(ctx, "DELETE", "/api/v1/enroll-tokens/"+url.PathEscape(pos[0]), nil, nil, nil)
		},
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runHosts(ctx context.Context, args []string) error {
	return sub(ctx, "hosts", args, map[string]func(context.Context, []string) error{
		"list": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("hosts list", flag.ContinueOnError)
			search := fs.String("search", "", "hostname or ID substring")
			group := fs.String("group", "", "host group")
			online := fs.String("online", "", "true or false")
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"search": *search, "group": *group, "online": *online} {
				if v != "" {
					q.Set(k, v)
				}
			}
			_, err := list(ctx, "/api/v1/hosts", q, *asJSON, "ID\tHOSTNAME\tGROUP\tSTATUS\tOS\tAGENT\tLAST SEEN", func(h store.Host) []string {
				return []string{h.ID, h.Hostname, h.Group, hostState(h), orDash(h.Facts.OSPretty), orDash(h.Facts.AgentVersion), ts(h.LastSeen)}
			})
			return err
		},
		"show": func(ctx context.Context, args []string) error {
			return showJSON(ctx, args, "hosts show", "a host ID", "/api/v1/hosts/", &store.Host{})
		},
		"revoke": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("hosts revoke", flag.ContinueOnError)
			pos, err := parse(fs, args, 1, "a host ID")
			if err != nil {
				return err
			}
			if err := call(ctx, "POST", "/api/v1/hosts/"+url.PathEscape(pos[0])+"/revoke", nil, struct{}{}, nil); err != nil {
				return err
			}
			fmt.Printf("host %s revoked; its agent is disconnected and refused from now on\n", pos[0])
			return nil
		},
	})
}

func hostState(h store.Host) string {
	switch {
	case h.Revoked():
		return "revoked"
	case h.Online:
		return "online"
	}
	return "offline"
}

// showJSON fetches one object and prints it as JSON.
func showJSON(ctx context.Context, args []string, name, argName, prefix string, out any) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	pos, err := parse(fs, args, 1, argName)
	if err != nil {
		return err
	}
	if err := call(ctx, "GET", prefix+url.PathEscape(pos[0]), nil, nil, out); err != nil {
		return err
	}
	return printJSON(out)
}

func runEvents(ctx context.Context, args []string) error {
	return sub(ctx, "events", args, map[string]func(context.Context, []string) error{
		"list": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("events list", flag.ContinueOnError)
			q := url.Values{}
			names := []string{"host", "category", "severity", "status", "since", "until", "limit", "offset"}
			vals := map[string]*string{}
			for _, n := range names {
				vals[n] = fs.String(n, "", "filter: "+n)
			}
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			for n, v := range vals {
				if *v != "" {
					q.Set(n, *v)
				}
			}
			p, err := list(ctx, "/api/v1/events", q, *asJSON, "ID\tSEVERITY\tCATEGORY\tHOST\tCOUNT\tLAST SEEN\tSTATUS\tTITLE", func(e store.Event) []string {
				return []string{e.ID, e.Severity, string(e.Category), orDash(e.Hostname), fmt.Sprint(e.Count), ts(e.LastSeen), e.Status, e.Title}
			})
			if err == nil && !*asJSON {
				fmt.Fprintf(os.Stderr, "%d of %d events\n", len(p.Items), p.Total)
			}
			return err
		},
		"show": func(ctx context.Context, args []string) error {
			return showJSON(ctx, args, "events show", "an event ID", "/api/v1/events/", &store.Event{})
		},
		"handle": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("events handle", flag.ContinueOnError)
			status := fs.String("status", "handled", "handled, ignored, or open to reopen")
			comment := fs.String("comment", "", "why")
			pos, err := parse(fs, args, 1, "an event ID")
			if err != nil {
				return err
			}
			var e store.Event
			if err := call(ctx, "POST", "/api/v1/events/"+url.PathEscape(pos[0])+"/handle", nil, api.HandleRequest{Status: *status, Comment: *comment}, &e); err != nil {
				return err
			}
			fmt.Printf("event %s is now %s\n", e.ID, e.Status)
			return nil
		},
	})
}

func runTasks(ctx context.Context, args []string) error {
	return sub(ctx, "tasks", args, map[string]func(context.Context, []string) error{
		"create": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("tasks create", flag.ContinueOnError)
			typ := fs.String("type", "", "task type (collect-facts)")
			hosts := fs.String("hosts", "", "comma-separated host IDs")
			group := fs.String("group", "", "every host of a group")
			all := fs.Bool("all", false, "every host")
			params := fs.String("params", "", "JSON object of parameters")
			ttl := fs.String("ttl", "24h", "how long to wait for offline hosts")
			wait := fs.Bool("wait", false, "wait until every host finished, then print the task")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			if *typ == "" {
				return usagef("tasks create: --type is required")
			}
			req := api.TaskRequest{Type: *typ, Group: *group, All: *all, TTL: *ttl}
			if *hosts != "" {
				req.Hosts = strings.Split(*hosts, ",")
			}
			if *params != "" {
				if !json.Valid([]byte(*params)) {
					return usagef("tasks create: --params is not valid JSON")
				}
				req.Params = json.RawMessage(*params)
			}
			var t store.Task
			if err := call(ctx, "POST", "/api/v1/tasks", nil, req, &t); err != nil {
				return err
			}
			for *wait && !taskDone(t) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				if err := call(ctx, "GET", "/api/v1/tasks/"+t.ID, nil, nil, &t); err != nil {
					return err
				}
			}
			return printJSON(t)
		},
		"list": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("tasks list", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			_, err := list(ctx, "/api/v1/tasks", nil, *asJSON, "ID\tTYPE\tCREATED BY\tCREATED\tEXPIRES", func(t store.Task) []string {
				return []string{t.ID, t.Type, t.CreatedBy, ts(t.CreatedAt), ts(t.ExpiresAt)}
			})
			return err
		},
		"show": func(ctx context.Context, args []string) error {
			return showJSON(ctx, args, "tasks show", "a task ID", "/api/v1/tasks/", &store.Task{})
		},
	})
}

func taskDone(t store.Task) bool {
	for _, h := range t.Hosts {
		if !store.FinalTaskState(h.State) {
			return false
		}
	}
	return true
}

func runUsers(ctx context.Context, args []string) error {
	// onUser sends one request about the user with this name or ID.
	onUser := func(ctx context.Context, name, method string, body any) error {
		var p api.Page[store.User]
		if err := call(ctx, "GET", "/api/v1/users", nil, nil, &p); err != nil {
			return err
		}
		for _, u := range p.Items {
			if u.Name == name || u.ID == name {
				return call(ctx, method, "/api/v1/users/"+u.ID, nil, body, nil)
			}
		}
		return &apiError{status: 404, msg: "no user " + name}
	}
	readPassword := func() (string, error) {
		if pw := os.Getenv("PALISADE_NEW_PASSWORD"); pw != "" {
			return pw, nil
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return sub(ctx, "users", args, map[string]func(context.Context, []string) error{
		"list": func(ctx context.Context, args []string) error {
			if _, err := parse(flag.NewFlagSet("users list", flag.ContinueOnError), args, 0, "no arguments"); err != nil {
				return err
			}
			_, err := list(ctx, "/api/v1/users", nil, false, "ID\tNAME\tROLE\tCREATED", func(u store.User) []string {
				return []string{u.ID, u.Name, u.Role, ts(u.CreatedAt)}
			})
			return err
		},
		"create": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("users create", flag.ContinueOnError)
			role := fs.String("role", store.RoleViewer, "admin, analyst or viewer")
			pos, err := parse(fs, args, 1, "a user name (password from standard input or PALISADE_NEW_PASSWORD)")
			if err != nil {
				return err
			}
			pw, err := readPassword()
			if err != nil {
				return err
			}
			var u store.User
			if err := call(ctx, "POST", "/api/v1/users", nil, api.UserRequest{Name: pos[0], Role: *role, Password: pw}, &u); err != nil {
				return err
			}
			fmt.Printf("user %s (%s) created with id %s\n", u.Name, u.Role, u.ID)
			return nil
		},
		"passwd": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("users passwd", flag.ContinueOnError), args, 1, "a user name (password from standard input or PALISADE_NEW_PASSWORD)")
			if err != nil {
				return err
			}
			pw, err := readPassword()
			if err != nil {
				return err
			}
			return onUser(ctx, pos[0], "PATCH", api.UserRequest{Password: pw})
		},
		"role": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("users role", flag.ContinueOnError), args, 2, "a user name and a role")
			if err != nil {
				return err
			}
			return onUser(ctx, pos[0], "PATCH", api.UserRequest{Role: pos[1]})
		},
		"delete": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("users delete", flag.ContinueOnError), args, 1, "a user name")
			if err != nil {
				return err
			}
			return onUser(ctx, pos[0], "DELETE", nil)
		},
	})
}

func runAudit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	actor := fs.String("actor", "", "only this user")
	action := fs.String("action", "", "only this action, e.g. event.handled")
	limit := fs.String("limit", "100", "entries")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	q := url.Values{"limit": {*limit}}
	if *actor != "" {
		q.Set("actor", *actor)
	}
	if *action != "" {
		q.Set("action", *action)
	}
	_, err := list(ctx, "/api/v1/audit", q, *asJSON, "TIME\tACTOR\tACTION\tTARGET\tDETAIL\tFROM", func(e store.AuditEntry) []string {
		return []string{ts(e.At), e.Actor, e.Action, e.Target, e.Detail, e.Remote}
	})
	return err
}
