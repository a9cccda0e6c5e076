package util

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// PrintFlags are -o and its companions for a command that prints the
// objects of GroupVersion: kubectl's PrintFlags for json, yaml, kyaml,
// name, go-template and jsonpath (and their file forms, with --template
// and --allow-missing-template-keys), and the formats the command renders
// for a person itself: no -o, and those given to NewPrintFlags (wide).
type PrintFlags struct {
	*genericclioptions.PrintFlags
	// Human are the -o values the command renders itself.
	Human []string
	// NoHeaders leaves a table's header line out (--no-headers).
	NoHeaders bool
	// rendering names what no -o prints: the table, the text.
	rendering string
}

// NewPrintFlags returns the flags of a command whose rendering for a
// person (no -o: "the table", "the text") takes the extra -o values human.
func NewPrintFlags(rendering string, human ...string) *PrintFlags {
	return &PrintFlags{
		PrintFlags: genericclioptions.NewPrintFlags("").WithTypeSetter(Scheme),
		Human:      append([]string{""}, human...),
		rendering:  rendering,
	}
}

// AllowedFormats are the values -o takes, besides none.
func (f *PrintFlags) AllowedFormats() []string {
	return append(slices.Clone(f.Human[1:]), f.PrintFlags.AllowedFormats()...)
}

// AddFlags adds -o, --template and --allow-missing-template-keys and, with
// noHeaders, --no-headers. kubectl's --show-managed-fields is left out:
// these objects have no managed fields.
func (f *PrintFlags) AddFlags(cmd *cobra.Command, noHeaders bool) {
	f.TemplatePrinterFlags.AddFlags(cmd)
	cmd.Flags().StringVarP(f.OutputFormat, "output", "o", *f.OutputFormat,
		fmt.Sprintf("output format: one of %s (default: %s)", strings.Join(f.AllowedFormats(), ", "), f.rendering))
	f.OutputFlagSpecified = func() bool { return cmd.Flag("output").Changed }
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(f.AllowedFormats(), cobra.ShellCompDirectiveNoFileComp))
	if noHeaders {
		cmd.Flags().BoolVar(&f.NoHeaders, "no-headers", false, "leave out the table's header line")
	}
}

// IsHuman says the command renders the output itself: no -o (and no
// --template), or one of Human.
func (f *PrintFlags) IsHuman() bool {
	format := *f.OutputFormat
	if format == "" && *f.TemplatePrinterFlags.TemplateArgument != "" {
		return false // --template alone means -o go-template, as in kubectl
	}
	return slices.Contains(f.Human, format)
}

// IsWide says -o wide.
func (f *PrintFlags) IsWide() bool { return *f.OutputFormat == "wide" }

// Validate checks -o and its template, changing nothing.
func (f *PrintFlags) Validate() error {
	if f.IsHuman() {
		return nil
	}
	_, err := f.toPrinter()
	return err
}

func (f *PrintFlags) toPrinter() (func(runtime.Object, io.Writer) error, error) {
	p, err := f.ToPrinter()
	if genericclioptions.IsNoCompatiblePrinterError(err) {
		return nil, fmt.Errorf("unknown output format %q: use one of %s, or no -o for %s", *f.OutputFormat, strings.Join(f.AllowedFormats(), ", "), f.rendering)
	}
	if err != nil {
		return nil, fmt.Errorf("-o %s: %w", *f.OutputFormat, err)
	}
	return p.PrintObj, nil
}

// Print writes obj in the -o format (one that is not Human). -o name names
// a list's items one a line, the way kubectl get does; kubectl's name
// printer refuses a list. A template prints strings as they are, so it is
// given obj with every character a terminal would act on (an escape
// sequence or a line break in a crafted record) escaped; json and yaml
// escape such characters themselves.
func (f *PrintFlags) Print(obj runtime.Object, w io.Writer) error {
	printObj, err := f.toPrinter()
	if err != nil {
		return err
	}
	format, _, _ := strings.Cut(strings.ToLower(*f.OutputFormat), "=")
	if format == "name" && meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			return err
		}
		for _, item := range items {
			if err := printObj(item, w); err != nil {
				return err
			}
		}
		return nil
	}
	if format == "" || slices.Contains(f.TemplatePrinterFlags.AllowedFormats(), format) {
		if obj, err = escapedCopy(obj); err != nil {
			return err
		}
	}
	return printObj(obj, w)
}

// escapedCopy is obj as the templates see it (its JSON), with each string
// escaped where a terminal would act on it (EscapeLine).
func escapedCopy(obj runtime.Object) (runtime.Object, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: escapeStrings(m).(map[string]any)}, nil
}

func escapeStrings(v any) any {
	switch v := v.(type) {
	case string:
		return EscapeLine(v)
	case map[string]any:
		for k, e := range v {
			v[k] = escapeStrings(e)
		}
	case []any:
		for i, e := range v {
			v[i] = escapeStrings(e)
		}
	}
	return v
}
