package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

func runPolicy(ctx context.Context, args []string) error {
	return sub(ctx, "policy", args, map[string]func(context.Context, []string) error{
		"list": func(ctx context.Context, args []string) error {
			if _, err := parse(flag.NewFlagSet("policy list", flag.ContinueOnError), args, 0, "no arguments"); err != nil {
				return err
			}
			_, err := list(ctx, "/api/v1/policies", nil, false, "SCOPE\tVERSION\tUPDATED BY\tUPDATED", func(v api.PolicyView) []string {
				return []string{v.Scope, v.Version, v.UpdatedBy, ts(v.UpdatedAt)}
			})
			return err
		},
		"show": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("policy show", flag.ContinueOnError), args, 1, "a scope: fleet or group:NAME")
			if err != nil {
				return err
			}
			var v api.PolicyView
			if err := call(ctx, "GET", "/api/v1/policies/"+url.PathEscape(pos[0]), nil, nil, &v); err != nil {
				return err
			}
			return printJSON(v)
		},
		"set": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("policy set", flag.ContinueOnError), args, 2, "a scope and a JSON file (- for standard input)")
			if err != nil {
				return err
			}
			var b []byte
			if pos[1] == "-" {
				b, err = io.ReadAll(os.Stdin)
			} else {
				b, err = os.ReadFile(pos[1])
			}
			if err != nil {
				return err
			}
			var v api.PolicyView
			if err := call(ctx, "PUT", "/api/v1/policies/"+url.PathEscape(pos[0]), nil, json.RawMessage(b), &v); err != nil {
				return err
			}
			fmt.Printf("policy %s saved (version %s) and sent to its agents\n", v.Scope, v.Version)
			return nil
		},
		"delete": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("policy delete", flag.ContinueOnError), args, 1, "a scope")
			if err != nil {
				return err
			}
			return call(ctx, "DELETE", "/api/v1/policies/"+url.PathEscape(pos[0]), nil, nil, nil)
		},
	})
}

func runBlocks(ctx context.Context, args []string) error {
	targets := func(fs *flag.FlagSet) func() api.BlockRequest {
		hosts := fs.String("hosts", "", "comma-separated host IDs")
		group := fs.String("group", "", "every host of a group")
		all := fs.Bool("all", false, "every host")
		return func() api.BlockRequest {
			r := api.BlockRequest{Group: *group, All: *all}
			if *hosts != "" {
				r.Hosts = strings.Split(*hosts, ",")
			}
			return r
		}
	}
	order := func(ctx context.Context, name, path string, args []string, withTTL bool) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		ttl, reason := new(string), new(string)
		if withTTL {
			ttl = fs.String("ttl", "", "how long (default: until removed)")
			reason = fs.String("reason", "", "why, for the record")
		}
		tgt := targets(fs)
		pos, err := parse(fs, args, 1, "an address or CIDR")
		if err != nil {
			return err
		}
		req := tgt()
		req.Prefix, req.TTL, req.Reason = pos[0], *ttl, *reason
		var t store.Task
		if err := call(ctx, "POST", path, nil, req, &t); err != nil {
			return err
		}
		fmt.Printf("task %s sent to %d host(s); see 'palisade tasks show %s'\n", t.ID, len(t.Hosts), t.ID)
		return nil
	}
	return sub(ctx, "blocks", args, map[string]func(context.Context, []string) error{
		"list": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("blocks list", flag.ContinueOnError)
			host := fs.String("host", "", "host ID")
			source := fs.String("source", "", "auto or operator")
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, args, 0, "no arguments"); err != nil {
				return err
			}
			q := url.Values{"limit": {"1000"}}
			if *host != "" {
				q.Set("host", *host)
			}
			if *source != "" {
				q.Set("source", *source)
			}
			_, err := list(ctx, "/api/v1/blocks", q, *asJSON, "PREFIX\tHOST\tSOURCE\tEXPIRES\tREASON", func(b store.ActiveBlock) []string {
				return []string{b.Prefix, orDash(b.Hostname), b.Source, ts(b.ExpiresAt), b.Reason}
			})
			return err
		},
		"add": func(ctx context.Context, args []string) error {
			return order(ctx, "blocks add", "/api/v1/blocks", args, true)
		},
		"remove": func(ctx context.Context, args []string) error {
			return order(ctx, "blocks remove", "/api/v1/blocks/remove", args, false)
		},
	})
}

func runReputation(ctx context.Context, args []string) error {
	return sub(ctx, "reputation", args, map[string]func(context.Context, []string) error{
		"import": func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("reputation import", flag.ContinueOnError)
			source := fs.String("source", "", "name of the feed the verdicts come from")
			pos, err := parse(fs, args, 1, "a file of sha256,verdict[,family] lines (- for standard input)")
			if err != nil {
				return err
			}
			if *source == "" {
				return usagef("reputation import: --source is required")
			}
			var r io.Reader = os.Stdin
			if pos[0] != "-" {
				f, err := os.Open(pos[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			var res api.ImportResult
			if err := c.doRaw(ctx, "POST", "/api/v1/reputation/import?source="+url.QueryEscape(*source), "text/csv", r, &res); err != nil {
				return err
			}
			fmt.Printf("%s: %d verdicts imported, %d lines skipped\n", res.Source, res.Imported, res.Skipped)
			for _, e := range res.Errors {
				fmt.Fprintln(os.Stderr, "  "+e)
			}
			return nil
		},
		"lookup": func(ctx context.Context, args []string) error {
			pos, err := parse(flag.NewFlagSet("reputation lookup", flag.ContinueOnError), args, 1, "a SHA-256")
			if err != nil {
				return err
			}
			var v store.HashVerdict
			if err := call(ctx, "GET", "/api/v1/reputation/"+url.PathEscape(pos[0]), nil, nil, &v); err != nil {
				return err
			}
			return printJSON(v)
		},
	})
}
