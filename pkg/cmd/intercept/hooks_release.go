//go:build !e2ehooks

package intercept

import "github.com/spf13/pflag"

// addHookFlags adds nothing in the release build: the e2e suite's flags
// (hooks_e2e.go) exist only with the e2ehooks tag.
func addHookFlags(*pflag.FlagSet, *Options) {}
