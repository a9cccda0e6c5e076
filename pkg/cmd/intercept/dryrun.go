package intercept

import (
	"fmt"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"sigs.k8s.io/yaml"
)

// printDryRun prints what the start would create and change, and, for a
// route narrowed by path or method, which requests the sidecars would
// send this machine (the route is not part of any object: a sidecar gets
// it over the tunnel).
func printDryRun(out interface{ Write([]byte) (int, error) }, st *session.Started, rt route.Route) error {
	if rt.Narrowed() {
		fmt.Fprintf(out, "# route: %s go to this machine; the sidecars send every other request to the app\n", describeRequests(rt))
	}
	if st.Copy == nil {
		fmt.Fprintf(out, "# service %s is intercepted already (deployment %s): this intercept would join it with a route of its own; nothing would be created or switched\n",
			st.Service.Name, cmdutil.Printable(st.Record.Copy))
		return nil
	}
	svc := st.Switched.DeepCopy()
	svc.APIVersion, svc.Kind = "v1", "Service"
	svc.ManagedFields = nil
	objs := []any{st.Copy, svc}
	if st.Decoy != nil {
		fmt.Fprintf(out, "# by decoy: service %s keeps the original selector, and deployment %s runs the sidecar alone, its upstream the decoy's ClusterIP (%s until it is allocated)\n",
			cmdutil.Printable(st.Decoy.Name), cmdutil.Printable(st.Copy.Name), workload.DecoyIPPlaceholder)
		objs = []any{st.Decoy, st.Copy, svc}
	}
	for _, obj := range objs {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", b)
	}
	return nil
}
