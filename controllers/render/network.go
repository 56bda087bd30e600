package render

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Ingress routes the host to the gateway, or is nil without spec.ingress.
func Ingress(cc *chatv1alpha1.ChatCluster) *networkingv1.Ingress {
	ing := cc.Spec.Ingress
	if ing == nil {
		return nil
	}
	var annotations map[string]string
	if len(ing.Annotations) > 0 {
		annotations = map[string]string{}
		for k, v := range ing.Annotations {
			annotations[k] = v
		}
	}
	out := &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
		ObjectMeta: metav1.ObjectMeta{Name: IngressName(cc), Namespace: cc.Namespace, Labels: objectLabels(WorkloadLabels(cc, RoleGateway)), Annotations: annotations},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ing.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: ing.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					// The REST API (and files) is core's; the WebSocket and the web client
					// are the gateway's (the longest prefix wins). The gateway answers its
					// health and metrics endpoints only to requests that no proxy forwarded.
					Paths: []networkingv1.HTTPIngressPath{
						ingressPath("/api/", WorkloadName(cc, RoleCore)),
						ingressPath("/ws", WorkloadName(cc, RoleGateway)),
						ingressPath("/", WorkloadName(cc, RoleGateway)),
					},
				}},
			}},
		},
	}
	if ing.TLSSecretName != "" {
		out.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{ing.Host}, SecretName: ing.TLSSecretName}}
	}
	return out
}

func ingressPath(prefix, service string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{
		Path:     prefix,
		PathType: ptr.To(networkingv1.PathTypePrefix),
		Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: service,
			Port: networkingv1.ServiceBackendPort{Name: HTTPPortName},
		}},
	}
}

// NetworkPolicy names.
func GatewayPolicyName(cc *chatv1alpha1.ChatCluster) string      { return cc.Name + "-gateway" }
func InternalPolicyName(cc *chatv1alpha1.ChatCluster) string     { return cc.Name + "-internal" }
func DependenciesPolicyName(cc *chatv1alpha1.ChatCluster) string { return cc.Name + "-dependencies" }

// parleyPods selects every Parley pod of the ChatCluster (workloads and migration Jobs).
func parleyPods(cc *chatv1alpha1.ChatCluster) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: "parley", LabelInstance: cc.Name}}
}

// DefaultIngressControllerNamespace is where the ingress controller runs when
// spec.ingress.controllerSelector is unset (ingress-nginx's own default).
const DefaultIngressControllerNamespace = "ingress-nginx"

// IngressControllerPeer is the NetworkPolicy peer of the ingress controller's pods.
func IngressControllerPeer(ing *chatv1alpha1.IngressSpec) networkingv1.NetworkPolicyPeer {
	sel := ing.ControllerSelector
	if sel == nil || (sel.NamespaceSelector == nil && sel.PodSelector == nil) {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": DefaultIngressControllerNamespace},
		}}
	}
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: sel.NamespaceSelector.DeepCopy(), PodSelector: sel.PodSelector.DeepCopy()}
}

// GatewayPolicy opens the HTTP port of the workloads clients talk to. With an Ingress,
// the gateway (WebSocket, web client) and core (REST API, files) admit the ingress
// controller's pods only; core also admits this ChatCluster's own pods through
// InternalPolicy, and nothing else. Without an Ingress the gateway, reached through its
// Service, admits anyone, and core is not opened at all.
func GatewayPolicy(cc *chatv1alpha1.ChatCluster) *networkingv1.NetworkPolicy {
	roles := []string{RoleGateway}
	rule := networkingv1.NetworkPolicyIngressRule{
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(HTTPPort))}},
	}
	if ing := cc.Spec.Ingress; ing != nil {
		roles = append(roles, RoleCore)
		rule.From = []networkingv1.NetworkPolicyPeer{IngressControllerPeer(ing)}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: GatewayPolicyName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels: map[string]string{LabelName: "parley", LabelInstance: cc.Name},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: roles,
				}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{rule},
		},
	}
}

// InternalPolicy admits traffic to core, notification and migration pods only from
// Parley pods of the same ChatCluster.
func InternalPolicy(cc *chatv1alpha1.ChatCluster) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: InternalPolicyName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels: map[string]string{LabelName: "parley", LabelInstance: cc.Name},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: []string{RoleCore, RoleNotification, RoleMigrate},
				}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: parleyPods(cc)}}}},
		},
	}
}

// DependenciesPolicy admits traffic to the managed dependencies only from Parley pods of
// the same ChatCluster, or is nil when every dependency is external.
func DependenciesPolicy(cc *chatv1alpha1.ChatCluster) *networkingv1.NetworkPolicy {
	var deps []string
	for _, dep := range []string{DepPostgres, DepRedis, DepKafka} {
		if ManagedDependency(cc, dep) != nil {
			deps = append(deps, dep)
		}
	}
	if len(deps) == 0 {
		return nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: DependenciesPolicyName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels:      map[string]string{LabelInstance: cc.Name, LabelManagedBy: ManagedBy},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelName, Operator: metav1.LabelSelectorOpIn, Values: deps}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: parleyPods(cc)}}}},
		},
	}
}
