package doctor

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// What a sidecar reports (the pod, the method, the path, a header's name,
// an error) reaches the terminal quoted when it holds a character that is
// not printable: a crafted pod or caller cannot drive the terminal.
func TestDoctorQuotesWhatSidecarsSay(t *testing.T) {
	m := tunnel.NewMarker("X-Dev", "dev", "dev")
	evil := "\x1b]0;owned\x07\r\n"
	rep := doctorReport{
		Service: "cart", Entry: "svc/front", Sent: "http://10.0.0.1:80/", From: "front-1" + evil, Marker: m,
		Expect: []tunnel.Carrier{tunnel.CarrierHeader}, SendErr: errors.New("remote: " + evil),
		Hits: []tunnel.Hit{
			{Carrier: tunnel.CarrierHeader, Name: "X-Dev", Method: "GET" + evil, Path: "/" + evil, Pod: "cart-1" + evil},
			{Carrier: tunnel.CarrierOther, Name: "X-Moved" + evil, Method: "GET", Path: "/", Pod: "cart-2" + evil},
		},
	}
	var out bytes.Buffer
	renderDoctor(&out, rep)
	if s := out.String(); strings.ContainsAny(s, "\x1b\x07\r") || !strings.Contains(s, `\x1b]0;owned\a\r\n`) {
		t.Fatalf("the report prints what a sidecar said unquoted:\n%q", s)
	}
}
