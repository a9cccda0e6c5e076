package intercept

import (
	"fmt"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"sigs.k8s.io/yaml"
)

func printDryRun(out interface{ Write([]byte) (int, error) }, st *session.Started) error {
	if st.Copy == nil {
		fmt.Fprintf(out, "# service %s is intercepted already (deployment %s): this intercept would join it with a route of its own; nothing would be created or switched\n",
			st.Service.Name, cmdutil.Printable(st.Record.Copy))
		return nil
	}
	svc := st.Switched.DeepCopy()
	svc.APIVersion, svc.Kind = "v1", "Service"
	svc.ManagedFields = nil
	for _, obj := range []any{st.Copy, svc} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", b)
	}
	return nil
}
