// Package cli dispatches the parley binary's roles. Every flag of every role takes its
// default from a PARLEY_* environment variable, so that Kubernetes can configure a role
// through env, ConfigMaps and Secrets alone.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Role is one subcommand of the parley binary.
type Role struct {
	Name    string
	Summary string
	// Setup registers the role's flags on fs and returns the function that runs the role
	// once the flags are parsed. Roles without flags may leave Setup nil and set Run.
	Setup func(fs *flag.FlagSet) RunFunc
	// Run is used when Setup is nil.
	Run RunFunc
	// TakesArgs lets positional arguments through to the role; otherwise any is a usage
	// error, so a mistyped flag never passes silently as an argument.
	TakesArgs bool
}

// RunFunc runs a role until ctx is cancelled or the role finishes. args are the
// positional arguments left after the flags.
type RunFunc func(ctx context.Context, env Env, args []string) error

// Env is what a role may touch of the process it runs in.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// ErrNotBuilt is returned by roles that exist in the command line but whose capability
// has not landed yet. It exits with a distinct status so scripts cannot mistake it for success.
var ErrNotBuilt = errors.New("role not built yet")

// ErrUsage marks a command-line mistake; the caller prints usage and exits 2.
var ErrUsage = errors.New("usage")

// Exit statuses.
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitUsage    = 2
	ExitNotBuilt = 3
)

// EnvName maps a flag name to its environment variable: "postgres-url" → PARLEY_POSTGRES_URL.
func EnvName(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// NotBuilt returns a role that explains which issue builds it and exits ExitNotBuilt.
func NotBuilt(name, summary, where string) Role {
	return Role{
		Name:    name,
		Summary: summary,
		Run: func(context.Context, Env, []string) error {
			return fmt.Errorf("parley %s: %w (%s)", name, ErrNotBuilt, where)
		},
	}
}

// Main runs the role named by args[0] and returns the process exit status.
func Main(ctx context.Context, env Env, roles []Role, args []string) int {
	byName := make(map[string]Role, len(roles))
	for _, r := range roles {
		byName[r.Name] = r
	}
	if len(args) == 0 {
		printTopUsage(env.Stderr, roles)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if r, ok := byName[args[1]]; ok {
				fs, _ := roleFlags(r, env)
				printRoleUsage(env.Stdout, r, fs)
				return ExitOK
			}
		}
		printTopUsage(env.Stdout, roles)
		return ExitOK
	}
	r, ok := byName[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "parley: unknown role %q\n\n", args[0])
		printTopUsage(env.Stderr, roles)
		return ExitUsage
	}
	fs, run := roleFlags(r, env)
	if err := applyEnv(fs, env.Getenv); err != nil {
		fmt.Fprintf(env.Stderr, "parley %s: %v\n", r.Name, err)
		return ExitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printRoleUsage(env.Stdout, r, fs)
			return ExitOK
		}
		fmt.Fprintf(env.Stderr, "parley %s: %v\n\n", r.Name, err)
		printRoleUsage(env.Stderr, r, fs)
		return ExitUsage
	}
	if len(fs.Args()) > 0 && !r.TakesArgs {
		fmt.Fprintf(env.Stderr, "parley %s: unexpected arguments %q\n\n", r.Name, fs.Args())
		printRoleUsage(env.Stderr, r, fs)
		return ExitUsage
	}
	err := run(ctx, env, fs.Args())
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNotBuilt):
		fmt.Fprintln(env.Stderr, err)
		return ExitNotBuilt
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(env.Stderr, "parley %s: %v\n\n", r.Name, err)
		printRoleUsage(env.Stderr, r, fs)
		return ExitUsage
	default:
		fmt.Fprintf(env.Stderr, "parley %s: %v\n", r.Name, err)
		return ExitFailure
	}
}

func roleFlags(r Role, env Env) (*flag.FlagSet, RunFunc) {
	fs := flag.NewFlagSet("parley "+r.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed by us, with the env names
	run := r.Run
	if r.Setup != nil {
		run = r.Setup(fs)
	}
	return fs, run
}

// applyEnv sets every flag whose PARLEY_* variable is present. Flags on the command line
// are parsed afterwards and so win over the environment.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

func printTopUsage(w io.Writer, roles []Role) {
	fmt.Fprintln(w, "Usage: parley <role> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Roles:")
	sorted := append([]Role(nil), roles...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, r := range sorted {
		fmt.Fprintf(w, "  %-14s %s\n", r.Name, r.Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'parley <role> --help' for a role's flags. Every flag defaults from")
	fmt.Fprintln(w, "PARLEY_<FLAG_NAME> in the environment (for example --listen from PARLEY_LISTEN).")
}

func printRoleUsage(w io.Writer, r Role, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: parley %s [flags]\n\n%s\n", r.Name, r.Summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintln(w, "\nThis role takes no flags.")
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		fmt.Fprintf(w, "%s\n      %s (env %s", head, usage, EnvName(f.Name))
		if f.DefValue != "" {
			fmt.Fprintf(w, ", default %q", f.DefValue)
		}
		fmt.Fprintln(w, ")")
	})
}
