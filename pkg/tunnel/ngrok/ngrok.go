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

// Listen connects an ngrok agent with the authtoken and opens an HTTPS
// endpoint with a random URL. The agent retries a failing connection
// forever, so Listen gives up after the timeout with an error that says
// what to check.
func Listen(ctx context.Context, o Options) (Endpoint, error) {
	authtoken, timeout := o.Authtoken, o.Timeout
	if authtoken == "" {
		return nil, errors.New("--tunnel ngrok needs an authtoken: set " + EnvAuthtoken + " or pass --ngrok-authtoken " +
			"(it is on https://dashboard.ngrok.com/get-started/your-authtoken)")
	}
	opts := []sdk.AgentOption{sdk.WithAuthtoken(authtoken), sdk.WithClientInfo("kubectl-intercept", "")}
	if o.ConnectURL != "" {
		opts = append(opts, sdk.WithAgentConnectURL(o.ConnectURL))
	}
	agent, err := sdk.NewAgent(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the ngrok agent: %w", err)
	}
	type result struct {
		ln  sdk.EndpointListener
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	done := make(chan result, 1)
	go func() {
		ln, err := agent.Listen(ctx, sdk.WithDescription("kubectl-intercept"))
		done <- result{ln, err}
	}()
	select {
	case r := <-done:
		cancel()
		if r.err != nil {
			_ = agent.Disconnect()
			return nil, explainNgrok(r.err)
		}
		return ngrokEndpoint{r.ln, agent}, nil
	case <-ctx.Done():
		cancel()
		go func() {
			if r := <-done; r.ln != nil {
				r.ln.Close()
			}
			_ = agent.Disconnect()
		}()
		return nil, fmt.Errorf("ngrok could not be reached within %s: check that this machine reaches connect.ngrok-agent.com:443 "+
			"(a proxy may need HTTPS_PROXY), or use the built-in tunnel (leave out --tunnel ngrok)", timeout)
	}
}

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
	agent sdk.Agent
}

func (e ngrokEndpoint) URL() string { return e.EndpointListener.URL().String() }

func (e ngrokEndpoint) Close() error {
	err := e.EndpointListener.Close()
	_ = e.agent.Disconnect()
	return err
}
