package doctor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// With a route narrowed by path or method, the report says which route's
// path and method the request went to, and says when the marked request
// reached the Service as one the route does not take.
func TestRenderDoctorNarrowed(t *testing.T) {
	m := tunnel.Marker{Nonce: "3f9a1c0b5e7d2a46", Header: "X-Dev", Cookie: "x-intercept", Baggage: "x-intercept"}
	rt := &route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api/v2", Methods: "POST", Owner: "alice@laptop"}
	hit := func(method, path string) tunnel.Hit {
		return tunnel.Hit{Carrier: tunnel.CarrierHeader, Name: "X-Dev", Method: method, Path: path, Pod: "cart-intercept-1-abcde", Time: time.Now()}
	}
	for _, tc := range []struct {
		name   string
		r      doctorReport
		want   []string
		absent []string
	}{
		{"to the route's path", doctorReport{Service: "cart", Entry: "https://cart.example.com", Sent: "https://cart.example.com/api/v2",
			Method: "POST", Route: rt, RoutePath: true, Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200,
			Hits: []tunnel.Hit{hit("POST", "/api/v2")}}, []string{
			"Sent POST https://cart.example.com/api/v2 with header X-Dev",
			"to a path of route X-Dev:alice path /api/v2* POST (by alice@laptop), which takes only some paths or methods\n",
			"✓ header X-Dev reached svc/cart (pod cart-intercept-1-abcde) as POST /api/v2\n",
			"Your header X-Dev gets through",
		}, []string{"does not take"}},
		{"a Service entry, sent by a sidecar", doctorReport{Service: "cart", Entry: "svc/cart", Sent: "http://10.96.0.7:80/api/v2", From: "cart-intercept-1-abcde",
			Method: "POST", Route: rt, RoutePath: true, Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200,
			Hits: []tunnel.Hit{hit("POST", "/api/v2")}}, []string{
			"Sent POST svc/cart (10.96.0.7:80/api/v2) from the sidecar in pod cart-intercept-1-abcde with header X-Dev",
			"✓ header X-Dev reached svc/cart (pod cart-intercept-1-abcde) as POST /api/v2\n",
		}, []string{"does not take"}},
		{"a Service entry, sent by a sidecar older than methods", doctorReport{Service: "cart", Entry: "svc/cart", Sent: "http://10.96.0.7:80/api/v2", From: "cart-intercept-1-abcde",
			Method: "POST", Route: rt, RoutePath: true, Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200,
			Hits: []tunnel.Hit{hit("GET", "/api/v2")}}, []string{
			"The marked request reached svc/cart as GET /api/v2, which route X-Dev:alice path /api/v2* POST does not take",
			"The sidecar in pod cart-intercept-1-abcde sent GET, not POST: its image is older than this CLI; close and intercept again to run the current sidecar, or give --via a URL this machine reaches to have the doctor send POST.",
		}, []string{"Give --via a path"}},
		{"the entry's own path, which the route does not take", doctorReport{Service: "cart", Entry: "https://shop.example.com/checkout",
			Sent: "https://shop.example.com/checkout", Route: rt, Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200,
			Hits: []tunnel.Hit{hit("GET", "/checkout/cart")}}, []string{
			"Sent GET https://shop.example.com/checkout with",
			"The marked request reached svc/cart as GET /checkout/cart, which route X-Dev:alice path /api/v2* POST does not take: requests like it go to the app in the cluster, marker or not. Give --via a path",
		}, []string{"to a path of route"}},
	} {
		var out bytes.Buffer
		renderDoctor(&out, tc.r)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, w, out.String())
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out.String(), a) {
				t.Errorf("%s: report has %q:\n%s", tc.name, a, out.String())
			}
		}
	}
}
