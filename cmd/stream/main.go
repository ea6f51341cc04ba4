// Command stream works with a stream directory: it runs a demonstration
// workload and a benchmark, lists, creates and deletes topics, produces
// records from stdin and consumes them, shows consumer groups and their
// lag, decodes segment files and verifies a directory.
//
// Usage:
//
//	stream <command> [flags] [arguments]
//
// Every command that works on a directory takes -dir (default
// ./stream-data, the directory an embedding program opens by default),
// and every command takes -h for its own help and -json for output a
// script can read. Run "stream help" for the list of commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/instream/stream"
)

// defaultDir is the directory every command opens unless -dir says
// otherwise.
const defaultDir = "./stream-data"

// command is one subcommand. Each lives in its own file and registers
// itself in commands.
type command struct {
	name    string
	args    string // synopsis after the flags, e.g. "TOPIC"
	summary string // one line, for "stream help"
	help    string // paragraph printed by "stream <name> -h" above the flags
	// run parses the command's flags from args (with newFlagSet and
	// parse) and does the work, reading input (produce's records) from
	// stdin and writing results to stdout. A flag.ErrHelp or errUsage
	// from it sets the exit status; any other error is printed and the
	// status is 1.
	run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the command table, in the order "stream help" lists them.
var commands = []*command{
	demoCommand,
	topicsCommand,
	createCommand,
	deleteCommand,
	dumpCommand,
	verifyCommand,
	produceCommand,
	consumeCommand,
	groupsCommand,
	benchCommand,
	serveCommand,
	nodeCommand,
	clusterCommand,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks an error in the command line; the status is 2, as the
// flag package's.
var errUsage = errors.New("usage")

// run runs the command line args and returns the exit status: 0 on
// success, 1 when the command failed, 2 for a bad command line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return run(ctx, []string{c.name, "-h"}, stdin, stdout, stderr)
			}
		}
		usage(stdout)
		return 0
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "stream: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args[1:], stdin, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "stream %s: %s\n", c.name, strings.TrimPrefix(err.Error(), "stream: "))
	return 1
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, "stream works with an embedded stream directory.\n\n")
	fmt.Fprint(w, "Usage:\n\n\tstream <command> [flags] [arguments]\n\nCommands:\n\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "\t%s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun \"stream <command> -h\" for a command's flags.\n")
}

// newFlagSet returns a flag set for c that reports errors instead of
// exiting, prints c's help on -h, and has the common -dir flag unless dir
// is nil.
func (c *command) newFlagSet(stderr io.Writer, dir *string) *flag.FlagSet {
	fs := flag.NewFlagSet("stream "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		synopsis := "stream " + c.name + " [flags]"
		if c.args != "" {
			synopsis += " " + c.args
		}
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n\nFlags:\n", synopsis, c.help)
		fs.PrintDefaults()
	}
	if dir != nil {
		fs.StringVar(dir, "dir", defaultDir, "stream `directory`")
	}
	return fs
}

// usageError prints what is wrong with the command line and the
// command's usage, and returns an error wrapping errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(fs.Output(), msg)
	fs.Usage()
	return fmt.Errorf("%w: %s", errUsage, msg)
}

// parse parses args with fs, turning a bad command line into errUsage
// (the flag package has already printed what is wrong and the usage).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// parseInterspersed parses args with fs like parse, but lets flags come
// after the arguments too ("stream create events -partitions 3"), and
// returns the arguments. After "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// openExisting opens the stream in dir for a command that inspects or
// changes one, refusing a directory that holds no stream rather than
// making it one (Open creates what is missing). A directory in use by
// another process fails at once with the library's error naming it.
func openExisting(dir string) (*stream.Stream, error) {
	if err := checkStreamDir(dir); err != nil {
		return nil, err
	}
	return stream.Open(dir, nil)
}

// checkStreamDir returns an error naming dir unless it looks like a
// stream's directory: one with meta.db and topics/.
func checkStreamDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	for _, name := range []string{"meta.db", "topics"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s is not a stream directory: it has no %s (\"stream create -dir %s TOPIC\" makes one)", dir, name, dir)
			}
			return err
		}
	}
	return nil
}

// writeJSON writes v to w as indented JSON, the -json output of every
// command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
