//go:build e2ehooks

package intercept

import "github.com/spf13/pflag"

// addHookFlags adds the e2e suite's hidden flags: --ngrok-connect-url points
// the ngrok agent at a stand-in service. Built only with the e2ehooks tag
// (make build-e2e).
func addHookFlags(fl *pflag.FlagSet, o *Options) {
	fl.StringVar(&o.NgrokConnectURL, "ngrok-connect-url", "", "")
	_ = fl.MarkHidden("ngrok-connect-url")
}
