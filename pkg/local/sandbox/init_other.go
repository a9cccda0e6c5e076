//go:build !linux

package sandbox

import (
	"fmt"
	"os"
)

// RunInit exists on Linux alone; elsewhere the plugin never starts it.
func RunInit(args []string) {
	fmt.Fprintln(os.Stderr, Check(nil))
	os.Exit(1)
}
