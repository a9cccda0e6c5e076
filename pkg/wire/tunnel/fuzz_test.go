package tunnel

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// listTable is a route table that takes any valid route once.
type listTable struct{ routes []route.Route }

func (l *listTable) Add(r route.Route, _ DialFunc) (func(), error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	for _, o := range l.routes {
		if o.Conflicts(r) {
			return nil, ErrConflict
		}
	}
	l.routes = append(l.routes, r)
	return func() {}, nil
}

func (l *listTable) List() []route.Route { return l.routes }

// Whatever a caller of the control port sends, the sidecar answers each
// line with a well-formed response or ends the session: it never panics
// or hangs, and an answer with an error always carries a code.
func FuzzControlMessages(f *testing.F) {
	for _, s := range []string{
		`{"op":"register","route":{"header":"X-Dev","value":"alice","client":"0123456789abcdef0123456789abcdef"}}`,
		`{"op":"register","route":{"all":true}}`,
		`{"op":"register"}`,
		`{"op":"routes","key":"k"}`,
		`{"op":"unregister"}`,
		`{"op":"probe","url":"http://169.254.169.254/"}`,
		`{"op":"watch","marker":{"nonce":"00"}}`,
		`{"op":"seen","nonce":"zz"}`,
		`{"op":"send","url":"file:///etc/passwd"}`,
		`{"op":"nope"}`,
		`not json`,
		`{"op":"register","route":{"header":"X-Dev","value":"a","owner":"\u001b]0;x\u0007"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		a, b := net.Pipe()
		srv := &Server{Pod: "p", Routes: &listTable{}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go srv.ServeConn(ctx, a)
		sess, err := yamux.Client(b, Config())
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		st, err := sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range line {
			if c == '\n' {
				line[i] = ' '
			}
		}
		_ = st.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := st.Write(append(line, '\n')); err != nil {
			return // the session ended: allowed
		}
		answer, err := bufio.NewReader(st).ReadBytes('\n')
		if err != nil {
			return // the sidecar ended the session on a line it cannot read: allowed
		}
		var resp Response
		if err := json.Unmarshal(answer, &resp); err != nil {
			t.Fatalf("answer %q is not a response: %v", answer, err)
		}
		if resp.Error != "" && resp.Code == "" {
			t.Fatalf("error %q without a code", resp.Error)
		}
	})
}
