// Package factory holds what every command needs from kubectl's standard
// flags: the namespace, the current context, the REST config and the
// clientset, filled once before a command runs.
package factory

import (
	"fmt"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Factory is filled by Complete from the flags (--kubeconfig, --context,
// -n, --as and the rest); no field needs the network.
type Factory struct {
	// ConfigFlags are kubectl's standard flags.
	ConfigFlags *genericclioptions.ConfigFlags

	// Namespace is -n, else the context's, else "default"; Explicit says
	// -n was given.
	Namespace string
	Explicit  bool
	// Context names the kubeconfig context in use; User its user (the
	// kubeconfig's name for the credentials); Server the API server's URL.
	Context    string
	User       string
	Server     string
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	// Dynamic reads kinds without Go types here (Gateway API routes, Argo
	// Rollouts); nil in a factory from NewFor.
	Dynamic dynamic.Interface

	// NewClient builds the clientset from the REST config;
	// kubernetes.NewForConfig when nil. Tests give a fake one.
	NewClient func(*rest.Config) (kubernetes.Interface, error)
}

// New returns a factory over flags; Complete fills it.
func New(flags *genericclioptions.ConfigFlags) *Factory {
	return &Factory{ConfigFlags: flags}
}

// NewFor returns a filled factory for tests and embedders: a client, its
// config (may be nil) and a namespace.
func NewFor(client kubernetes.Interface, cfg *rest.Config, namespace string) *Factory {
	return &Factory{ConfigFlags: genericclioptions.NewConfigFlags(false), Namespace: namespace, Client: client, RESTConfig: cfg}
}

// Complete reads the kubeconfig and builds the clients, once. A factory
// that already has a client (NewFor) is left as it is.
func (f *Factory) Complete() error {
	if f.Client != nil {
		return nil
	}
	loader := f.ConfigFlags.ToRawKubeConfigLoader()
	ns, explicit, err := loader.Namespace()
	if err != nil {
		return fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	f.Namespace, f.Explicit = ns, explicit
	raw, _ := loader.RawConfig()
	f.Context = raw.CurrentContext
	if f.ConfigFlags.Context != nil && *f.ConfigFlags.Context != "" {
		f.Context = *f.ConfigFlags.Context
	}
	if c, ok := raw.Contexts[f.Context]; ok {
		f.User = c.AuthInfo
	}
	cfg, err := f.ConfigFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w", err)
	}
	f.Server = cfg.Host
	// The access reviews go out at once; client-go's default of 5 requests
	// a second would queue them (and say so on the terminal).
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	injectFault(cfg)
	cs, err := f.newClient(cfg)
	if err != nil {
		return fmt.Errorf("connecting to the cluster of kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("connecting to the cluster of kubeconfig: %w", err)
	}
	f.RESTConfig, f.Client, f.Dynamic = cfg, cs, dyn
	return nil
}

func (f *Factory) newClient(cfg *rest.Config) (kubernetes.Interface, error) {
	if f.NewClient != nil {
		return f.NewClient(cfg)
	}
	return kubernetes.NewForConfig(cfg)
}

// ForCompletion returns a factory for shell completion: the flags typed
// so far, a request timeout so a cluster out of reach does not hang the
// shell, and no warnings printed. A filled factory (tests) is returned as is.
func (f *Factory) ForCompletion(timeout time.Duration) (*Factory, error) {
	if f.Client != nil {
		return f, nil
	}
	c := &Factory{ConfigFlags: f.ConfigFlags, NewClient: func(cfg *rest.Config) (kubernetes.Interface, error) {
		cfg.WarningHandler = rest.NoWarnings{}
		if cfg.Timeout == 0 {
			cfg.Timeout = timeout
		}
		return f.newClient(cfg)
	}}
	if err := c.Complete(); err != nil {
		return nil, err
	}
	return c, nil
}
