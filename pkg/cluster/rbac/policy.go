package rbac

import (
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// LeasePrefix starts the name of every Lease kubectl-intercept writes.
const LeasePrefix = "intercept-"

// The policies' names for the default group; another group's end in a
// suffix of its own.
const (
	DeploymentsPolicy = "kubectl-intercept-deployments"
	ServicesPolicy    = "kubectl-intercept-services"
	PodStatusPolicy   = "kubectl-intercept-pod-status"
	LeasesPolicy      = "kubectl-intercept-leases"
)

// The Pod Security Standards' baseline capabilities: a copy may add these
// and no other.
var baselineCapabilities = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

// The fields a policy compares between the old object and the new, by
// name as the API writes them. A field of a newer Kubernetes than the
// policy must compile on (1.33) cannot be named: the API server refuses an
// expression that names a field its schema does not have. policy_test.go
// checks these lists against the API types, so a new field is a decision.
var (
	// serviceSpecEqual is every field of a Service's spec but the selector
	// and the ports, which the plugin changes (the ports' targetPort only).
	serviceSpecEqual = []string{"clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity", "loadBalancerIP",
		"loadBalancerSourceRanges", "externalName", "externalTrafficPolicy", "healthCheckNodePort",
		"publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy",
		"allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy", "trafficDistribution"}
	// servicePortEqual is every field of a Service's port but targetPort;
	// port and protocol find the old port.
	servicePortEqual = []string{"name", "appProtocol", "nodePort"}
	// podStatusEqual is every field of a pod's status but the conditions.
	podStatusEqual = []string{"observedGeneration", "phase", "message", "reason", "nominatedNodeName", "hostIP", "hostIPs",
		"podIP", "podIPs", "startTime", "initContainerStatuses", "containerStatuses", "qosClass",
		"ephemeralContainerStatuses", "resize", "resourceClaimStatuses"}
	// deploymentSpecEqual is every field of a Deployment's spec but the
	// replica count, which the plugin follows the original's with.
	deploymentSpecEqual = []string{"selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit",
		"paused", "progressDeadlineSeconds"}
	// metadataEqual is what of an object's metadata a member may not
	// change (labels and annotations apart, where a policy says so).
	metadataEqual = []string{"ownerReferences", "finalizers"}
)

// What the copy transform of pkg/cluster/workload gives the sidecar, which a created
// copy's sidecar must be. policy_test.go checks these against the
// transform's output.
const (
	// noTokenVolume is the empty directory over the sidecar's token path.
	noTokenVolume = "intercept-no-token"
	tokenPath     = "/var/run/secrets/kubernetes.io/serviceaccount"
	// sidecarUser is the user and group the sidecar runs as.
	sidecarUser = 65532
)

// The shapes of the sidecar's arguments, as RE2 for CEL's matches.
const (
	rePort    = `[0-9]{1,5}`
	reAddr    = `(\[[0-9a-fA-F:.]+\]|[0-9.]+):` + rePort
	reListen  = `--listen=:` + rePort
	reUp      = `--upstream=127\.0\.0\.1:` + rePort
	reControl = `--control=127\.0\.0\.1:` + rePort
	rePeer    = `--peer=:` + rePort
	reExtra   = `--h2c|--service-addr=` + reAddr + `|--also=listen=:` + rePort + `,upstream=127\.0\.0\.1:` + rePort +
		`,control=127\.0\.0\.1:` + rePort + `,peer=:` + rePort + `(,h2c)?(,service-addr=` + reAddr + `)?`
	// A decoy's proxy (the sidecar alone in its pods) goes on to the
	// decoy's ClusterIP, not to an app beside it. The policy sees no other
	// object, so it cannot tell that ClusterIP from any other address: it
	// admits any IP address and port here. What stops a proxy pointed
	// elsewhere is the join's check (the proxy made again from the decoy's
	// ClusterIP and compared), not this policy.
	reUpDecoy    = `--upstream=` + reAddr
	reExtraDecoy = `--h2c|--service-addr=` + reAddr + `|--also=listen=:` + rePort + `,upstream=` + reAddr +
		`,control=127\.0\.0\.1:` + rePort + `,peer=:` + rePort + `(,h2c)?(,service-addr=` + reAddr + `)?`
)

// sidecarArgs: the four flags of the first port in the transform's order,
// then the optional ones, each once, and further ports; every listener has
// its container port.
var sidecarArgs = sidecarArgsWith(reUp, reExtra)

// decoyProxyArgs: the same for a decoy's proxy, whose upstreams are an IP
// address and port, any (meant as the decoy's ClusterIP; see reUpDecoy).
var decoyProxyArgs = sidecarArgsWith(reUpDecoy, reExtraDecoy)

func sidecarArgsWith(up, extra string) string {
	return `c.?args.orValue([]).size() >= 4 &&
c.args[0].matches(` + celString("^"+reListen+"$") + `) &&
c.args[1].matches(` + celString("^"+up+"$") + `) &&
c.args[2].matches(` + celString("^"+reControl+"$") + `) &&
c.args[3].matches(` + celString("^"+rePeer+"$") + `) &&
c.args.all(a, a.matches(` + celString("^("+reListen+"|"+up+"|"+reControl+"|"+rePeer+"|"+extra+")$") + `)) &&
c.args.filter(a, a.startsWith('--listen=') || a.startsWith('--upstream=') || a.startsWith('--control=') || a.startsWith('--peer=')).size() == 4 &&
c.args.filter(a, a == '--h2c').size() <= 1 &&
c.args.filter(a, a.startsWith('--service-addr=')).size() <= 1 &&
c.?ports.orValue([]).size() == c.args.filter(a, a.startsWith('--listen=') || a.startsWith('--also=')).size() &&
c.ports.all(p, c.args.exists(a, a == '--listen=:' + string(p.containerPort) || a.startsWith('--also=listen=:' + string(p.containerPort) + ',')))`
}

// sidecarEnv: the pod's name and the container's own memory limit, from
// the API, and nothing else.
var sidecarEnv = `!has(c.envFrom) &&
c.?env.orValue([]).map(e, e.name) == ['POD_NAME', 'MEMORY_LIMIT'] &&
c.env.all(e, !has(e.value) && (e.name == 'POD_NAME' ?
  e.?valueFrom.?fieldRef.?fieldPath.orValue('') == 'metadata.name' :
  e.?valueFrom.?resourceFieldRef.?resource.orValue('') == 'limits.memory' &&
  e.valueFrom.resourceFieldRef.?containerName.orValue('') == $SIDECAR &&
  string(e.valueFrom.resourceFieldRef.?divisor.orValue('1')) == '1'))`

// sidecarRest: the security context, the probes and the rest of the
// container as the transform writes them.
var sidecarRest = `!has(c.command) && !has(c.workingDir) && !has(c.lifecycle) && !has(c.livenessProbe) && !has(c.startupProbe) &&
!has(c.restartPolicy) &&
has(c.readinessProbe) && has(c.readinessProbe.httpGet) && !has(c.readinessProbe.httpGet.host) &&
c.ports.all(p, p.?protocol.orValue('TCP') == 'TCP' && !has(p.hostIP) && p.?hostPort.orValue(0) == 0) &&
has(c.securityContext) &&
c.securityContext.?runAsNonRoot.orValue(false) &&
c.securityContext.?runAsUser.orValue(0) == $USER &&
c.securityContext.?runAsGroup.orValue(0) == $USER &&
!c.securityContext.?allowPrivilegeEscalation.orValue(true) &&
c.securityContext.?readOnlyRootFilesystem.orValue(false) &&
c.securityContext.?capabilities.?drop.orValue([]) == ['ALL'] &&
c.securityContext.?capabilities.?add.orValue([]).size() == 0 &&
c.securityContext.?seccompProfile.?type.orValue('') == 'RuntimeDefault' &&
!has(c.securityContext.privileged) && !has(c.securityContext.procMount) && !has(c.securityContext.seLinuxOptions) &&
!has(c.securityContext.windowsOptions) && !has(c.securityContext.appArmorProfile)`

// member starts a message: who is refused.
func (o Options) member() string {
	return "as a member of group " + o.Group + " you "
}

// celString is s as a CEL string literal: Go's escapes are CEL's.
func celString(s string) string {
	q := strconv.Quote(s)
	return "'" + strings.ReplaceAll(q[1:len(q)-1], "'", `\'`) + "'"
}

// celList is ss as a CEL list of strings.
func celList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = celString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// equalFields compares the named fields of before and after, present or not.
func equalFields(before, after string, fields []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = after + ".?" + f + " == " + before + ".?" + f
	}
	return strings.Join(parts, " &&\n")
}

// annotationsEqualBut says that the maps before and after hold the same
// annotations, but for the keys in free.
func annotationsEqualBut(before, after string, free []string) string {
	return after + ".all(k, k in " + celList(free) + " || (k in " + before + " && " + before + "[k] == " + after + "[k])) &&\n" +
		before + ".all(k, k in " + celList(free) + " || k in " + after + ")"
}

// removedOnly holds when annotation key is unchanged or removed: never
// added, never changed.
func removedOnly(before, after, key string) string {
	k := celString(key)
	return "(!(" + k + " in " + after + ") || (" + k + " in " + before + " && " + before + "[" + k + "] == " + after + "[" + k + "]))"
}

// keptOnceSet holds when annotation key, once set, stays as it is.
func keptOnceSet(before, after, key string) string {
	k := celString(key)
	return "(!(" + k + " in " + before + ") || (" + k + " in " + after + " && " + before + "[" + k + "] == " + after + "[" + k + "]))"
}

// expand fills the placeholders of a CEL template.
func (o Options) expand(s string) string {
	return strings.NewReplacer(
		"$GROUP", celString(o.Group),
		"$MANAGED_BY_KEY", celString(session.LabelManagedBy),
		"$MANAGED_BY", celString(session.ManagedByValue),
		"$SESSION_LABEL", celString(session.LabelSession),
		"$DECOY_OF", celString(workload.LabelDecoyOf),
		"$DECOY_SUFFIX", celString(workload.DecoySuffix),
		"$SIDECAR", celString(workload.SidecarName),
		"$IMAGE", celString(o.ProxyImage),
		"$GATE", celString(workload.RoutesGate),
		"$LEASE_PREFIX", celString(LeasePrefix),
		"$CAPABILITIES", celList(baselineCapabilities),
		"$NO_TOKEN", celString(noTokenVolume),
		"$TOKEN_PATH", celString(tokenPath),
		"$USER", strconv.Itoa(sidecarUser),
	).Replace(s)
}

func (o Options) policy(base string, rules []admissionv1.NamedRuleWithOperations, vars []admissionv1.Variable, checks []admissionv1.Validation) *admissionv1.ValidatingAdmissionPolicy {
	for i := range vars {
		vars[i].Expression = o.expand(vars[i].Expression)
	}
	for i := range checks {
		checks[i].Expression = o.expand(checks[i].Expression)
	}
	return &admissionv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: o.name(base)},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy:    ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: rules},
			MatchConditions: []admissionv1.MatchCondition{{
				Name:       "intercept-users",
				Expression: o.expand("$GROUP in request.userInfo.groups"),
			}},
			Variables:   vars,
			Validations: checks,
		},
	}
}

func resourceRule(group, resource string, ops ...admissionv1.OperationType) []admissionv1.NamedRuleWithOperations {
	return []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
		Operations: ops,
		Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{resource}},
	}}}
}

// Policies are the ValidatingAdmissionPolicies that confine the members of
// the group, each with its binding.
func (o Options) Policies() ([]*admissionv1.ValidatingAdmissionPolicy, []*admissionv1.ValidatingAdmissionPolicyBinding) {
	policies := []*admissionv1.ValidatingAdmissionPolicy{o.deployments(), o.services(), o.podStatus(), o.leases()}
	bindings := make([]*admissionv1.ValidatingAdmissionPolicyBinding, len(policies))
	for i, p := range policies {
		bindings[i] = &admissionv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: p.Name},
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        p.Name,
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			},
		}
	}
	return policies, bindings
}

// deployments: a member creates, changes and deletes only copies (ours in
// the old object and in the new); a copy is created with the sidecar as the
// copy transform writes it (the one image, its arguments, environment,
// mount and security context), no shared process namespace and without a
// way onto its node; a copy's update changes its
// replica count and the marks of a start or a close, nothing else.
func (o Options) deployments() *admissionv1.ValidatingAdmissionPolicy {
	template := "object.spec.template.spec"
	sidecarFiles := `variables.sidecars.all(c,
  !has(c.volumeDevices) &&
  c.?volumeMounts.orValue([]).size() == 1 &&
  c.volumeMounts.all(m, m.name == $NO_TOKEN && m.mountPath == $TOKEN_PATH && m.?readOnly.orValue(false) &&
    !has(m.subPath) && !has(m.subPathExpr) && !has(m.mountPropagation) && !has(m.recursiveReadOnly))) &&
` + template + `.?volumes.orValue([]).exists(v, v.name == $NO_TOKEN && has(v.emptyDir)) &&
` + template + `.containers.all(c, c.name == $SIDECAR || c.?volumeMounts.orValue([]).all(m, m.name != $NO_TOKEN)) &&
` + template + `.?initContainers.orValue([]).all(c, c.?volumeMounts.orValue([]).all(m, m.name != $NO_TOKEN))`
	noNodeAccess := `!` + template + `.?hostNetwork.orValue(false) &&
!` + template + `.?hostPID.orValue(false) &&
!` + template + `.?hostIPC.orValue(false) &&
!` + template + `.?securityContext.?windowsOptions.?hostProcess.orValue(false) &&
` + template + `.?volumes.orValue([]).all(v, !has(v.hostPath)) &&
(` + template + `.containers + ` + template + `.?initContainers.orValue([])).all(c,
  !c.?securityContext.?privileged.orValue(false) &&
  !c.?securityContext.?windowsOptions.?hostProcess.orValue(false) &&
  c.?securityContext.?capabilities.?add.orValue([]).all(a, a in $CAPABILITIES) &&
  c.?ports.orValue([]).all(p, p.?hostPort.orValue(0) == 0))`
	return o.policy(DeploymentsPolicy,
		resourceRule("apps", "deployments", admissionv1.Create, admissionv1.Update, admissionv1.Delete),
		[]admissionv1.Variable{
			{Name: "oldOurs", Expression: "request.operation != 'CREATE' && oldObject.metadata.?labels[?$MANAGED_BY_KEY].orValue('') == $MANAGED_BY"},
			{Name: "newOurs", Expression: "request.operation != 'DELETE' && object.metadata.?labels[?$MANAGED_BY_KEY].orValue('') == $MANAGED_BY"},
			{Name: "newAnn", Expression: "has(object.metadata.annotations) ? object.metadata.annotations : {}"},
			{Name: "oldAnn", Expression: "has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {}"},
			{Name: "sidecars", Expression: "request.operation == 'CREATE' ? " + template + ".containers.filter(c, c.name == $SIDECAR) : []"},
			// A decoy's proxy: the sidecar alone, in pods labeled with the
			// session alone (none of a workload's labels).
			{Name: "proxyOnly", Expression: "request.operation == 'CREATE' && " + template + ".containers.size() == 1 &&\n" +
				template + ".?initContainers.orValue([]).size() == 0 &&\n" +
				"object.spec.template.metadata.?labels.orValue({}).size() == 1 &&\n" +
				"object.spec.template.metadata.?labels[?$SESSION_LABEL].hasValue()"},
		},
		[]admissionv1.Validation{
			{
				Expression: "request.operation == 'CREATE' || variables.oldOurs",
				Message:    o.member() + "may change or delete only the copies kubectl-intercept makes (label " + session.LabelManagedBy + "=" + session.ManagedByValue + "), and this deployment is not one",
			},
			{
				Expression: "request.operation == 'DELETE' || variables.newOurs",
				Message:    o.member() + "may create only copies labeled " + session.LabelManagedBy + "=" + session.ManagedByValue + ", and a copy stays one",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" + template + ".containers.filter(c, c.name == $SIDECAR).size() == 1 &&\n" +
					template + ".containers.exists(c, c.name == $SIDECAR && c.image == $IMAGE && !has(c.command))",
				Message: o.member() + "may create only copies that carry one sidecar " + workload.SidecarName + " of image " + o.ProxyImage + " exactly, with the image's own command",
			},
			{
				Expression: "variables.sidecars.all(c, variables.proxyOnly ?\n(" + decoyProxyArgs + ") :\n(" + sidecarArgs + "))",
				Message: o.member() + "may create only copies whose sidecar " + workload.SidecarName + " takes the arguments kubectl-intercept gives it: " +
					"--listen=:PORT, --upstream=127.0.0.1:PORT, --control=127.0.0.1:PORT, --peer=:PORT, in this order, then --h2c, --service-addr=IP:PORT " +
					"and --also=listen=:PORT,upstream=127.0.0.1:PORT,control=127.0.0.1:PORT,peer=:PORT[,h2c][,service-addr=IP:PORT], and one container port for each --listen " +
					"(a decoy's proxy, the sidecar alone in pods labeled " + session.LabelSession + " alone, goes on to upstream=IP:PORT)",
			},
			{
				Expression: "variables.sidecars.all(c,\n" + sidecarEnv + ")",
				Message: o.member() + "may create only copies whose sidecar " + workload.SidecarName + "'s environment is POD_NAME (the pod's name) and MEMORY_LIMIT " +
					"(its own memory limit), nothing more and no envFrom",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" + sidecarFiles,
				Message: o.member() + "may create only copies whose sidecar " + workload.SidecarName + " mounts the empty directory " + noTokenVolume +
					" read-only over the service account token and nothing else (no subPath), which no other container mounts",
			},
			{
				Expression: "variables.sidecars.all(c,\n" + sidecarRest + ")",
				Message: o.member() + "may create only copies whose sidecar " + workload.SidecarName + " runs as kubectl-intercept writes it: " +
					"user and group 65532, non-root, no privilege escalation, read-only root filesystem, every capability dropped, the runtime's seccomp profile; " +
					"an HTTP readiness probe and no other probe, no lifecycle hooks, no working directory, TCP ports on no host address",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" +
					"!" + template + ".?shareProcessNamespace.orValue(false) && " + template + ".?ephemeralContainers.orValue([]).size() == 0",
				Message: o.member() + "may not create a copy whose containers share one process namespace (shareProcessNamespace), or with ephemeral containers: " +
					"another container could reach into the sidecar's process. A workload that shares its process namespace cannot be intercepted by the group",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" + noNodeAccess,
				Message:    o.member() + "may not create a copy that reaches its node (host network, PID or IPC, hostPath volumes, host ports, privileged or host-process containers, capabilities beyond the baseline)",
			},
			{
				Expression: "request.operation != 'UPDATE' ||\n" +
					equalFields("oldObject.spec", "object.spec", deploymentSpecEqual) + " &&\n" +
					"object.metadata.?labels == oldObject.metadata.?labels &&\n" +
					equalFields("oldObject.metadata", "object.metadata", metadataEqual) + " &&\n" +
					annotationsEqualBut("variables.oldAnn", "variables.newAnn", []string{session.AnnotationStarting, session.AnnotationClosing, session.AnnotationTakeOver}) + " &&\n" +
					keptOnceSet("variables.oldAnn", "variables.newAnn", session.AnnotationTakeOver),
				Message: o.member() + "may change of a copy only its replica count and the annotations " +
					session.AnnotationStarting + ", " + session.AnnotationClosing + " and " + session.AnnotationTakeOver + " (written once, then kept)",
			},
		})
}

// services: a member's update of a Service changes only its selector, its
// ports' targetPort and the annotation that holds the intercept's record;
// a member creates and deletes only decoys (--decoy): a ClusterIP Service
// named <service>-decoy-<session>, labeled ours, that selects no pods of an
// intercept and reaches nothing outside the cluster; a decoy is never
// changed.
func (o Options) services() *admissionv1.ValidatingAdmissionPolicy {
	ports := `object.spec.?ports.orValue([]).size() == oldObject.spec.?ports.orValue([]).size() &&
object.spec.?ports.orValue([]).all(p, oldObject.spec.?ports.orValue([]).exists(o,
  o.port == p.port && o.?protocol == p.?protocol &&
  ` + strings.ReplaceAll(equalFields("o", "p", servicePortEqual), "\n", "\n  ") + `))`
	update := func(expr string) string { return "request.operation != 'UPDATE' ||\n" + expr }
	// decoy holds of a Service (obj) that has the shape of a decoy.
	decoy := func(obj string) string {
		return strings.NewReplacer("$OBJ", obj).Replace(`$OBJ.metadata.?labels[?$MANAGED_BY_KEY].orValue('') == $MANAGED_BY &&
$OBJ.metadata.?labels[?$DECOY_OF].orValue('') != '' &&
$OBJ.metadata.?labels[?$SESSION_LABEL].orValue('').matches('^[a-z0-9]{1,16}$') &&
$OBJ.metadata.name.endsWith($DECOY_SUFFIX + $OBJ.metadata.labels[$SESSION_LABEL]) &&
$OBJ.spec.?type.orValue('ClusterIP') == 'ClusterIP'`)
	}
	return o.policy(ServicesPolicy,
		resourceRule("", "services", admissionv1.Create, admissionv1.Update, admissionv1.Delete),
		[]admissionv1.Variable{
			{Name: "newAnn", Expression: "request.operation != 'DELETE' && has(object.metadata.annotations) ? object.metadata.annotations : {}"},
			{Name: "oldAnn", Expression: "request.operation != 'CREATE' && has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {}"},
			{Name: "oldDecoy", Expression: "request.operation != 'CREATE' && oldObject.metadata.?labels[?$DECOY_OF].hasValue()"},
		},
		[]admissionv1.Validation{
			{
				Expression: update(annotationsEqualBut("variables.oldAnn", "variables.newAnn", []string{session.AnnotationRecord, session.LegacyAnnotationRecord}) + " &&\n" +
					removedOnly("variables.oldAnn", "variables.newAnn", session.LegacyAnnotationRecord)),
				Message: o.member() + "may change only the annotation " + session.AnnotationRecord + " of a Service, of its metadata " +
					"(and remove the record " + session.LegacyAnnotationRecord + " that releases up to 0.1 wrote)",
			},
			{
				Expression: update("object.metadata.?labels == oldObject.metadata.?labels &&\n" + equalFields("oldObject.metadata", "object.metadata", metadataEqual)),
				Message:    o.member() + "may not change the labels, owners or finalizers of a Service",
			},
			{
				Expression: update(equalFields("oldObject.spec", "object.spec", serviceSpecEqual) + " &&\n" + ports),
				Message:    o.member() + "may change only the selector and the ports' targetPort of a Service's spec",
			},
			{
				Expression: update("!variables.oldDecoy || object.spec == oldObject.spec && variables.newAnn == variables.oldAnn"),
				Message:    o.member() + "may not change a decoy (label " + workload.LabelDecoyOf + "): it keeps the selector it was made with",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" + decoy("object") + " &&\n" +
					"object.metadata.name.matches('^[a-z0-9-]+$') &&\n" +
					"!has(object.metadata.annotations) && !has(object.metadata.finalizers) && !has(object.metadata.ownerReferences)",
				Message: o.member() + "may create only the decoys of kubectl-intercept: named SERVICE" + workload.DecoySuffix + "SESSION, labeled " +
					session.LabelManagedBy + "=" + session.ManagedByValue + ", " + workload.LabelDecoyOf + " and " + session.LabelSession + "=SESSION, of type ClusterIP, " +
					"without annotations, finalizers or owners",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" +
					"object.spec.?clusterIP.orValue('') != 'None' &&\n" +
					"object.spec.?externalIPs.orValue([]).size() == 0 &&\n" +
					"!has(object.spec.externalName) && !has(object.spec.loadBalancerIP) && !has(object.spec.loadBalancerClass) &&\n" +
					"object.spec.?loadBalancerSourceRanges.orValue([]).size() == 0 &&\n" +
					"object.spec.?healthCheckNodePort.orValue(0) == 0 && !has(object.spec.externalTrafficPolicy) &&\n" +
					"!object.spec.?publishNotReadyAddresses.orValue(false) &&\n" +
					"object.spec.?ports.orValue([]).all(p, p.?nodePort.orValue(0) == 0)",
				Message: o.member() + "may create a decoy only with a cluster IP of its own: not headless, no external IPs (they would take the traffic of those addresses on every node), " +
					"no node ports, load balancer or external name, no unready endpoints",
			},
			{
				Expression: "request.operation != 'CREATE' ||\n" +
					"object.spec.?selector.orValue({}).size() > 0 &&\n" +
					"object.spec.selector.all(k, !k.startsWith('intercept.kubectl.dev/'))",
				Message: o.member() + "may create a decoy only with a selector, and one that selects by no label of kubectl-intercept's " +
					"(a decoy goes to the original's pods, never to a copy's or a proxy's)",
			},
			{
				Expression: "request.operation != 'DELETE' ||\n" + decoy("oldObject"),
				Message: o.member() + "may delete only the decoys of kubectl-intercept (label " + workload.LabelDecoyOf + ", named SERVICE" + workload.DecoySuffix + "SESSION), " +
					"and this Service is not one",
			},
		})
}

// podStatus: a member writes the status only of a copy's pods, and only the
// condition of the readiness gate.
func (o Options) podStatus() *admissionv1.ValidatingAdmissionPolicy {
	return o.policy(PodStatusPolicy,
		resourceRule("", "pods/status", admissionv1.Update),
		[]admissionv1.Variable{
			{Name: "others", Expression: "object.status.?conditions.orValue([]).filter(c, c.type != $GATE)"},
			{Name: "oldOthers", Expression: "oldObject.status.?conditions.orValue([]).filter(c, c.type != $GATE)"},
		},
		[]admissionv1.Validation{
			{
				Expression: "oldObject.metadata.?labels[?$SESSION_LABEL].hasValue()",
				Message:    o.member() + "may write the status only of the pods of a copy (label " + session.LabelSession + "), and this pod is not one",
			},
			{
				Expression: "object.metadata.?labels == oldObject.metadata.?labels &&\n" +
					"object.metadata.?annotations == oldObject.metadata.?annotations &&\n" +
					equalFields("oldObject.metadata", "object.metadata", metadataEqual),
				Message: o.member() + "may not change a pod's labels, annotations, owners or finalizers through its status",
			},
			{
				Expression: "variables.others == variables.oldOthers &&\n" + equalFields("oldObject.status", "object.status", podStatusEqual),
				Message:    o.member() + "may set only the condition " + workload.RoutesGate + " of a pod's status",
			},
		})
}

// leases: a member creates, changes and deletes only kubectl-intercept's
// Leases, ours in the old object and in the new.
func (o Options) leases() *admissionv1.ValidatingAdmissionPolicy {
	return o.policy(LeasesPolicy,
		resourceRule("coordination.k8s.io", "leases", admissionv1.Create, admissionv1.Update, admissionv1.Delete),
		[]admissionv1.Variable{
			{Name: "oldOurs", Expression: "request.operation == 'CREATE' ||\n" +
				"oldObject.metadata.name.startsWith($LEASE_PREFIX) && oldObject.metadata.?labels[?$MANAGED_BY_KEY].orValue('') == $MANAGED_BY"},
			{Name: "newOurs", Expression: "request.operation == 'DELETE' ||\n" +
				"object.metadata.name.startsWith($LEASE_PREFIX) && object.metadata.?labels[?$MANAGED_BY_KEY].orValue('') == $MANAGED_BY"},
		},
		[]admissionv1.Validation{{
			Expression: "variables.oldOurs && variables.newOurs",
			Message:    o.member() + "may create, change and delete only the Leases of kubectl-intercept (named " + LeasePrefix + "..., labeled " + session.LabelManagedBy + "=" + session.ManagedByValue + ", before and after)",
		}})
}
