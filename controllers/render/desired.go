package render

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Plan is every object the ChatCluster should own, except the generated Secrets and the
// migration Job, whose lifecycles differ.
type Plan struct {
	// Apply lists the objects to server-side apply, in order: settings and network
	// policies first, dependencies, then the workloads in upgrade order.
	Apply []client.Object
	// Absent lists objects (name and kind only) that must not exist, such as the HPA of a
	// workload whose autoscaling was removed.
	Absent []client.Object
}

// Desired plans the children of cc with the workloads on image. An empty image means no
// migration has succeeded yet: the Deployments and their autoscalers are left out.
// secrets maps the generated Secrets' names to their SecretDigest (see Deployment).
func Desired(cc *chatv1alpha1.ChatCluster, image string, secrets map[string]string) Plan {
	var p Plan
	settings := Settings(cc)
	checksum := Checksum(settings)
	p.Apply = append(p.Apply, settings, GatewayPolicy(cc), InternalPolicy(cc))
	p.add(DependenciesPolicy(cc), &networkingv1.NetworkPolicy{ObjectMeta: meta(cc, DependenciesPolicyName(cc))})
	p.add(GatewayMetricsPolicy(cc), &networkingv1.NetworkPolicy{ObjectMeta: meta(cc, GatewayMetricsPolicyName(cc))})
	if cluster := CNPGCluster(cc); cluster != nil {
		// Not in Absent when postgres.cnpg goes: deleting a database is a human's call.
		p.Apply = append(p.Apply, cluster)
		p.add(CNPGScheduledBackup(cc), cnpgObject(CNPGScheduledBackupKind, cc.Namespace, CNPGClusterName(cc)))
	}

	for _, dep := range []string{DepPostgres, DepRedis, DepKafka} {
		p.add(DependencyService(cc, dep), &corev1.Service{ObjectMeta: meta(cc, DependencyName(cc, dep))})
		p.add(DependencyStatefulSet(cc, dep), &appsv1.StatefulSet{ObjectMeta: meta(cc, DependencyName(cc, dep))})
	}
	if claim := FilesClaim(cc); claim != nil {
		// The claim is kept when files.volume is removed: deleting uploads is a human's call.
		p.Apply = append(p.Apply, claim)
	}
	for _, role := range Workloads {
		p.Apply = append(p.Apply, Service(cc, role), PodDisruptionBudget(cc, role))
	}
	if image != "" {
		for _, role := range Workloads {
			p.Apply = append(p.Apply, Deployment(cc, role, image, checksum, secrets))
			p.add(HorizontalPodAutoscaler(cc, role), &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta(cc, WorkloadName(cc, role))})
		}
	}
	p.add(Ingress(cc), &networkingv1.Ingress{ObjectMeta: meta(cc, IngressName(cc))})
	return p
}

// add appends obj to Apply, or absent to Absent when obj is nil. The typed nil pointers
// the builders return are checked through isNil.
func (p *Plan) add(obj, absent client.Object) {
	if isNil(obj) {
		p.Absent = append(p.Absent, absent)
		return
	}
	p.Apply = append(p.Apply, obj)
}

func isNil(obj client.Object) bool {
	switch o := obj.(type) {
	case *networkingv1.NetworkPolicy:
		return o == nil
	case *networkingv1.Ingress:
		return o == nil
	case *corev1.Service:
		return o == nil
	case *appsv1.StatefulSet:
		return o == nil
	case *autoscalingv2.HorizontalPodAutoscaler:
		return o == nil
	case *unstructured.Unstructured:
		return o == nil
	default:
		return obj == nil
	}
}

func meta(cc *chatv1alpha1.ChatCluster, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: cc.Namespace}
}
