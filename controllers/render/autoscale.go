package render

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Defaults of the connection autoscaler, the API's defaults for objects read before the
// API server defaulted them (render tests, older objects).
const (
	DefaultScaleUpWindowSeconds   = 30
	DefaultScaleDownWindowSeconds = 300
	DefaultScaleUpPods            = 4
	DefaultScaleDownPods          = 1
	// DefaultOperatorNamespace and DefaultOperatorName locate the operator's pods when
	// autoscaling.operatorSelector is unset: the chart's and config/default's labels.
	DefaultOperatorNamespace = "parley-system"
	DefaultOperatorName      = "parley-operator"
)

// ConnectionScaled reports whether the gateway's replicas follow its open connections
// (autoscaling.targetConnectionsPerPod).
func ConnectionScaled(cc *chatv1alpha1.ChatCluster) bool {
	a := cc.Spec.Gateway.Autoscaling
	return a != nil && a.TargetConnectionsPerPod != nil
}

// ConnectionFloor is the gateway count the connection autoscaler last decided, within
// minReplicas and maxReplicas (minReplicas before its first decision). Alone it is the
// Deployment's replicas; with targetCPUUtilization it is the HorizontalPodAutoscaler's
// minReplicas, so the CPU autoscaler may add pods above it but never go below it.
func ConnectionFloor(cc *chatv1alpha1.ChatCluster) int32 {
	a := cc.Spec.Gateway.Autoscaling
	lo, hi := max(a.MinReplicas, 1), max(a.MaxReplicas, 1)
	want := lo
	if st := cc.Status.Gateway.Autoscaler; st != nil && st.DesiredReplicas > 0 {
		want = st.DesiredReplicas
	}
	return min(max(want, lo), max(hi, lo))
}

// GatewayMetricsPolicyName is the NetworkPolicy admitting the operator to the gateways.
func GatewayMetricsPolicyName(cc *chatv1alpha1.ChatCluster) string {
	return cc.Name + "-gateway-metrics"
}

// OperatorPeer is the NetworkPolicy peer of the operator's pods.
func OperatorPeer(a *chatv1alpha1.AutoscalingSpec) networkingv1.NetworkPolicyPeer {
	sel := a.OperatorSelector
	if sel == nil || (sel.NamespaceSelector == nil && sel.PodSelector == nil) {
		return networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": DefaultOperatorNamespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: DefaultOperatorName}},
		}
	}
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: sel.NamespaceSelector.DeepCopy(), PodSelector: sel.PodSelector.DeepCopy()}
}

// GatewayMetricsPolicy admits the operator's pods to the gateway pods' HTTP port, where
// the connection autoscaler reads /metrics, or is nil without targetConnectionsPerPod.
// A policy of its own, so the operator reaches the gateways and nothing else.
func GatewayMetricsPolicy(cc *chatv1alpha1.ChatCluster) *networkingv1.NetworkPolicy {
	if !ConnectionScaled(cc) {
		return nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: GatewayMetricsPolicyName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: WorkloadLabels(cc, RoleGateway)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(HTTPPort))}},
				From:  []networkingv1.NetworkPolicyPeer{OperatorPeer(cc.Spec.Gateway.Autoscaling)},
			}},
		},
	}
}
