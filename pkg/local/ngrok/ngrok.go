package ngrok

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	sdk "golang.ngrok.com/ngrok/v2"
)

// Endpoint is a public way into the developer's machine: a listener whose
// connections come from a sidecar through a service on the internet, and
// the HTTPS URL that reaches it.
type Endpoint interface {
	net.Listener
	URL() string
}

// EnvAuthtoken is where the ngrok authtoken is read from unless given
// with a flag.
const EnvAuthtoken = "NGROK_AUTHTOKEN"

// Options say how to reach ngrok.
type Options struct {
	Authtoken string
	// Timeout bounds the wait for ngrok's service.
	Timeout time.Duration
	// ConnectURL replaces ngrok's service address (host:port), for a
	// stand-in service; empty: ngrok's own.
	ConnectURL string
}

// Agent is one session with ngrok's service; it opens as many endpoints
// as the intercept needs (the tunnel's, the preview's) on that session, so
// a plan that allows one agent session at a time is enough.
type Agent struct {
	agent   sdk.Agent
	timeout time.Duration
}

// Connect starts an ngrok agent session with the authtoken. The agent
// retries a failing connection forever, so Connect gives up after the
// timeout with an error that says what to check.
func Connect(ctx context.Context, o Options) (*Agent, error) {
	if o.Authtoken == "" {
		return nil, errors.New("ngrok needs an authtoken: set " + EnvAuthtoken + " or pass --ngrok-authtoken " +
			"(it is on https://dashboard.ngrok.com/get-started/your-authtoken)")
	}
	opts := []sdk.AgentOption{sdk.WithAuthtoken(o.Authtoken), sdk.WithClientInfo("kubectl-intercept", "")}
	if o.ConnectURL != "" {
		opts = append(opts, sdk.WithAgentConnectURL(o.ConnectURL))
	}
	agent, err := sdk.NewAgent(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the ngrok agent: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- agent.Connect(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			_ = agent.Disconnect()
			if ctx.Err() != nil {
				return nil, unreachable(o.Timeout)
			}
			return nil, explainNgrok(err)
		}
		return &Agent{agent: agent, timeout: o.Timeout}, nil
	case <-ctx.Done():
		go func() {
			<-done
			_ = agent.Disconnect()
		}()
		return nil, unreachable(o.Timeout)
	}
}

func unreachable(timeout time.Duration) error {
	return fmt.Errorf("ngrok could not be reached within %s: check that this machine reaches connect.ngrok-agent.com:443 "+
		"(a proxy may need HTTPS_PROXY), or use the built-in tunnel (leave out --tunnel ngrok and --preview=ngrok)", timeout)
}

// Listen opens an HTTPS endpoint with a random URL on the agent's session.
func (a *Agent) Listen(ctx context.Context, description string) (Endpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	ln, err := a.agent.Listen(ctx, sdk.WithDescription(description))
	if err != nil {
		return nil, explainNgrok(err)
	}
	return ngrokEndpoint{ln}, nil
}

// Close ends the session and every endpoint on it.
func (a *Agent) Close() error { return a.agent.Disconnect() }

// explainNgrok adds what to do to the errors a developer can fix.
func explainNgrok(err error) error {
	var ne sdk.Error
	if errors.As(err, &ne) {
		switch ne.Code() {
		case "ERR_NGROK_105", "ERR_NGROK_106", "ERR_NGROK_107":
			return fmt.Errorf("ngrok refused the authtoken (%s): copy it again from https://dashboard.ngrok.com/get-started/your-authtoken", ne.Code())
		case "ERR_NGROK_108":
			return fmt.Errorf("ngrok refused a second agent session (%s): the free plan allows one at a time; stop the other ngrok agent or use the built-in tunnel", ne.Code())
		}
	}
	return fmt.Errorf("opening an ngrok endpoint: %w", err)
}

type ngrokEndpoint struct {
	sdk.EndpointListener
}

func (e ngrokEndpoint) URL() string { return e.EndpointListener.URL().String() }
