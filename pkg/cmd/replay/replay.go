// Package replay is `kubectl intercept replay`: it sends the requests a
// wiretap recorded (--record FILE) to a URL and reports where the answers
// differ from the cluster's recorded ones.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/http/httpguts"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
)

// ReplayOptions are the inputs of `kubectl intercept replay`.
type ReplayOptions struct {
	genericiooptions.IOStreams

	File    string
	Against string
	Ignore  []string
	Headers []string
	Output  string
	Timeout time.Duration

	base   *url.URL
	ignore inspect.Ignore
	header http.Header
}

// NewCmdReplay builds `kubectl intercept replay`.
func NewCmdReplay(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ReplayOptions{IOStreams: streams, Timeout: 30 * time.Second}
	cmd := &cobra.Command{
		Use:   "replay FILE --against URL",
		Short: "Send the requests a wiretap recorded to a URL and report the answers that differ from the cluster's",
		Long: `Send again, one at a time, every request a wiretap recorded
(kubectl intercept svc/NAME --wiretap --record FILE) to URL, and compare
each answer with the one the cluster gave: status, headers (without the
hop-by-hop ones and Date, Content-Length, Age, Expires, Last-Modified and
ETag) and body (JSON as values, whatever the key order and spacing; other
bodies byte for byte). The exit code is 1 when any answer differs.

Each request goes to URL's host, with URL's path before the recorded one,
and URL's host as Host. Headers the record holds redacted (Authorization,
Cookie, X-Api-Key, ...) are left out and named; give them with -H.

--ignore leaves out what always differs: a JSONPath ($.a.b,
$.items[*].id, $..timestamp, $['odd name'], $.list[0]) in JSON bodies, or
header:NAME.`,
		Example: `  # A day of staging traffic against the build on this machine
  kubectl intercept replay staging.jsonl --against http://localhost:3000 --ignore '$..updatedAt'

  # With a credential the record left out, as JSON
  kubectl intercept replay staging.jsonl --against https://orders.test -H 'Authorization: Bearer ...' -o json`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.RunSteps(cmd.Context(), func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
	cmd.Flags().StringVar(&o.Against, "against", "", "the URL to send the recorded requests to (http or https; its path goes before each request's)")
	cmd.Flags().StringArrayVar(&o.Ignore, "ignore", nil, "a JSONPath in JSON bodies ($.a.b, $.items[*].id, $..timestamp) or header:NAME to leave out of the comparison (repeatable)")
	cmd.Flags().StringArrayVarP(&o.Headers, "header", "H", nil, "'Name: value' set on every request, replacing what was recorded (repeatable)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "json: print the report as JSON")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long each request may take, its body included")
	return cmd
}

// Complete reads the arguments and parses the flags' values.
func (o *ReplayOptions) Complete(args []string) error {
	o.File = args[0]
	var err error
	if o.Against != "" {
		if o.base, err = url.Parse(o.Against); err != nil {
			return fmt.Errorf("--against %q is not a URL: %w", o.Against, err)
		}
	}
	if o.ignore, err = inspect.ParseIgnore(o.Ignore); err != nil {
		return err
	}
	o.header = http.Header{}
	for _, h := range o.Headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return fmt.Errorf("-H %q: write a header as 'Name: value'", h)
		}
		o.header.Add(name, value)
	}
	return nil
}

// Validate checks the flags.
func (o *ReplayOptions) Validate() error {
	switch {
	case o.base == nil:
		return errors.New("say where to send the requests: --against URL (e.g. http://localhost:3000)")
	case o.base.Scheme != "http" && o.base.Scheme != "https":
		return fmt.Errorf("--against %q: the URL must start with http:// or https://", o.Against)
	case o.base.Host == "":
		return fmt.Errorf("--against %q names no host", o.Against)
	case o.base.RawQuery != "" || o.base.Fragment != "":
		return fmt.Errorf("--against %q: give a URL without a query or fragment; each request brings its own", o.Against)
	case o.Output != "" && o.Output != "json":
		return fmt.Errorf("-o %q: the report prints as text, or as JSON with -o json", o.Output)
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

// Report is what replay prints with -o json.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	File       string `json:"file"`
	Against    string `json:"against"`
	// Sent counts the requests sent; Differ those whose answer differed or
	// did not come; NotSent those that could not be sent as recorded.
	Sent    int                    `json:"sent"`
	Differ  int                    `json:"differ"`
	NotSent int                    `json:"notSent"`
	Results []inspect.ReplayResult `json:"results"`
}

// Run sends the requests and prints the report.
func (o *ReplayOptions) Run(ctx context.Context) error {
	f, err := os.Open(o.File)
	if err != nil {
		return fmt.Errorf("opening the record: %w", err)
	}
	defer f.Close()
	target := inspect.NewReplayTarget(o.base, o.ignore, o.header, o.Timeout)
	rep := Report{APIVersion: inspect.RecordAPIVersion, Kind: "ReplayReport", File: o.File, Against: o.base.String(), Results: []inspect.ReplayResult{}}
	err = inspect.ReadRecords(f, func(line int, rec inspect.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := target.Send(ctx, line, rec)
		if res.NotSent != "" {
			rep.NotSent++
		} else {
			rep.Sent++
		}
		if res.Differs() {
			rep.Differ++
		}
		rep.Results = append(rep.Results, res)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the record %s: %w", o.File, err)
	}
	if o.Output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s\n", b)
	} else {
		printText(o.Out, &rep)
	}
	if rep.Differ > 0 {
		return &local.ExitError{Code: 1} // reported above
	}
	return nil
}

func printText(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%d sent to %s, %d differ", rep.Sent, cmdutil.Printable(rep.Against), rep.Differ)
	if rep.NotSent > 0 {
		fmt.Fprintf(w, ", %d not sent", rep.NotSent)
	}
	fmt.Fprintln(w, ".")
	redacted := map[string]int{}
	for _, r := range rep.Results {
		for _, h := range r.Redacted {
			redacted[h]++
		}
		if r.NotSent != "" {
			fmt.Fprintf(w, "  %s %s (line %d): not sent: %s\n", cmdutil.Printable(r.Method), cmdutil.Printable(r.Target), r.Line, cmdutil.Printable(r.NotSent))
			continue
		}
		if !r.Differs() {
			continue
		}
		what := r.Error
		if what == "" {
			what = r.Diff.Summary()
		}
		fmt.Fprintf(w, "  %s %s (line %d): %s\n", cmdutil.Printable(r.Method), cmdutil.Printable(r.Target), r.Line, cmdutil.Printable(what))
		if r.Diff != nil {
			if s := r.Diff.Status; s != nil {
				fmt.Fprintf(w, "      status: cluster %d, here %d\n", s.Cluster, s.Local)
			}
			for _, h := range r.Diff.Headers {
				fmt.Fprintf(w, "      header %s: cluster %s, here %s\n", h.Name, values(h.Cluster), values(h.Local))
			}
			if b := r.Diff.Body; b != nil {
				for _, p := range b.Paths {
					fmt.Fprintf(w, "      %s: cluster %s, here %s\n", p.Path, orAbsent(p.Cluster), orAbsent(p.Local))
				}
			}
		}
	}
	if len(redacted) > 0 {
		names := make([]string, 0, len(redacted))
		for n := range redacted {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(w, "Left out, as the record holds them redacted: %s; give them with -H 'Name: value'.\n", strings.Join(names, ", "))
	}
}

func values(vs []string) string {
	if vs == nil {
		return "(absent)"
	}
	return cmdutil.Printable(strings.Join(vs, ", "))
}

func orAbsent(s string) string {
	if s == "" {
		return "(absent)"
	}
	return cmdutil.Printable(s)
}
