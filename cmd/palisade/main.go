// Command palisade is the Palisade console: "palisade serve" runs it, and the other
// subcommands administer it through its user API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes scripts can rely on.
const (
	exitOK       = 0
	exitError    = 1 // anything else: network, server error
	exitUsage    = 2 // bad command line
	exitAuth     = 3 // not logged in, or role too low
	exitNotFound = 4 // the named thing does not exist
	exitRejected = 5 // the console refused the request as invalid or conflicting
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"serve":      {"run the console (agent API, user API, web UI)", runServe},
	"login":      {"log the CLI in to a console and save the credentials", runLogin},
	"token":      {"enrollment tokens: create, list, delete", runToken},
	"hosts":      {"hosts: list, show, revoke", runHosts},
	"events":     {"events: list, show, handle", runEvents},
	"tasks":      {"tasks: create, list, show", runTasks},
	"users":      {"users: list, create, passwd, role, delete", runUsers},
	"audit":      {"show the audit log", runAudit},
	"policy":     {"detection and response policies: list, show, set, delete", runPolicy},
	"blocks":     {"IP blocks: list, add, remove", runBlocks},
	"reputation": {"file hash reputation: import a feed, look a hash up", runReputation},
	"vulns":      {"vulnerabilities: list, show, emergency, packages, import, status, accept", runVulns},
	"version":    {"print the version", func(context.Context, []string) error { fmt.Println(version); return nil }},
}

var version = "0.1.0-dev"

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: palisade COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'palisade COMMAND --help' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		if len(os.Args) < 2 {
			os.Exit(exitUsage)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "palisade: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:])
	stop()
	os.Exit(exitCode(err))
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "palisade:", err)
	var ue usageError
	var ae *apiError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae):
		switch {
		case ae.status == 401 || ae.status == 403:
			return exitAuth
		case ae.status == 404:
			return exitNotFound
		case ae.status == 400 || ae.status == 409 || ae.status == 422:
			return exitRejected
		}
	case errors.Is(err, errNotLoggedIn):
		return exitAuth
	}
	return exitError
}

// sub dispatches "palisade NOUN VERB".
func sub(ctx context.Context, noun string, args []string, verbs map[string]func(context.Context, []string) error) error {
	names := make([]string, 0, len(verbs))
	for v := range verbs {
		names = append(names, v)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Printf("Usage: palisade %s {%s} [flags]\n", noun, strings.Join(names, "|"))
		if len(args) == 0 {
			return usagef("%s: missing subcommand", noun)
		}
		return nil
	}
	fn, ok := verbs[args[0]]
	if !ok {
		return usagef("%s: unknown subcommand %q (want one of %s)", noun, args[0], strings.Join(names, ", "))
	}
	return fn(ctx, args[1:])
}

// parse parses flags, turning errors into usage errors; positional arguments must number want
// (any number when want is negative).
func parse(fs *flag.FlagSet, args []string, want int, argNames string) ([]string, error) {
	fs.SetOutput(os.Stderr)
	// Flags may come before or after the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if want >= 0 && len(pos) != want {
		return nil, usagef("%s: want %s", fs.Name(), argNames)
	}
	return pos, nil
}
