package render

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Termination grace periods. The gateway drains its WebSockets (clients reconnect to
// another pod and resume from their last sequence), which takes longer than finishing
// in-flight requests.
const (
	gatewayGraceSeconds = 120
	defaultGraceSeconds = 30
)

// GatewayConnectionsMetric is the per-pod metric the gateway exports and its autoscaler
// targets.
const GatewayConnectionsMetric = "parley_gateway_connections"

// WorkloadSpec returns the ChatCluster's spec of one workload.
func WorkloadSpec(cc *chatv1alpha1.ChatCluster, role string) chatv1alpha1.WorkloadSpec {
	switch role {
	case RoleGateway:
		return cc.Spec.Gateway
	case RoleCore:
		return cc.Spec.Core
	default:
		return cc.Spec.Notification.WorkloadSpec
	}
}

// Deployment runs one Parley role from image. checksum digests the settings; secrets
// maps the names of the Secrets the operator generated to their SecretDigest, and the
// ones the pod references are digested onto its template, so their content rolls it.
func Deployment(cc *chatv1alpha1.ChatCluster, role, image, checksum string, secrets map[string]string) *appsv1.Deployment {
	w := WorkloadSpec(cc, role)
	selector := WorkloadLabels(cc, role)
	grace := int64(defaultGraceSeconds)
	if role == RoleGateway {
		grace = gatewayGraceSeconds
	}
	pod := parleyPod(cc, role, image, w)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To(grace)
	pod.Spec.TopologySpreadConstraints = spreadConstraints(cc, selector)
	pod.Annotations[AnnotationConfigChecksum] = checksum
	if sum := secretChecksum(pod.Spec, secrets); sum != "" {
		pod.Annotations[AnnotationSecretChecksum] = sum
	}
	pod.Labels[LabelVersion] = LabelValue(VersionOf(image))

	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkloadName(cc, role), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: appsv1.DeploymentSpec{
			Selector:             &metav1.LabelSelector{MatchLabels: selector},
			RevisionHistoryLimit: ptr.To[int32](5),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// Never below the desired count during a rollout: chat users notice.
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: pod,
		},
	}
	// With a HorizontalPodAutoscaler the HPA owns replicas; leaving the field out of the
	// apply keeps the operator from fighting it. The connection autoscaler alone sets
	// them itself (its decision is in the status).
	switch {
	case w.Autoscaling == nil:
		d.Spec.Replicas = ptr.To(ptr.Deref(w.Replicas, 2))
	case role == RoleGateway && ConnectionScaled(cc) && w.Autoscaling.TargetCPUUtilization == nil:
		d.Spec.Replicas = ptr.To(ConnectionFloor(cc))
	}
	return d
}

// LabelValue trims a value to a valid label value (63 characters).
func LabelValue(v string) string {
	if len(v) > 63 {
		v = v[:63]
	}
	// A label value must begin and end with a letter or digit and hold only those and
	// "-_.": image tags may not (a tag can start with "_", a cut can end on ".").
	v = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, v)
	return strings.Trim(v, "-_.")
}

// parleyPod is the pod template shared by the workloads and the migration Job.
func parleyPod(cc *chatv1alpha1.ChatCluster, role, image string, w chatv1alpha1.WorkloadSpec) corev1.PodTemplateSpec {
	pt := cc.Spec.PodTemplate
	labels := map[string]string{}
	for k, v := range pt.Labels {
		labels[k] = v
	}
	for k, v := range objectLabels(WorkloadLabels(cc, role)) {
		labels[k] = v
	}
	annotations := map[string]string{}
	for k, v := range pt.Annotations {
		annotations[k] = v
	}

	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: TmpDir}}
	if role == RoleCore && cc.Spec.Files.S3 == nil {
		files := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		if cc.Spec.Files.Volume != nil {
			files = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: FilesClaimName(cc)}}
		}
		volumes = append(volumes, corev1.Volume{Name: "files", VolumeSource: files})
		mounts = append(mounts, corev1.VolumeMount{Name: "files", MountPath: FilesDir})
	}

	container := corev1.Container{
		Name:            role,
		Image:           image,
		ImagePullPolicy: cc.Spec.ImagePullPolicy,
		Args:            []string{role},
		EnvFrom:         []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: SettingsName(cc)}}}},
		Env:             mergeEnv(parleyEnv(cc, role, w), w.Env),
		Resources:       resourcesOf(role, w.Resources),
		SecurityContext: containerSecurityContext(cc),
		VolumeMounts:    mounts,
	}
	if role != RoleMigrate {
		container.Ports = []corev1.ContainerPort{{Name: HTTPPortName, ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP}}
		container.LivenessProbe = httpProbe("/healthz", 10, 3)
		container.ReadinessProbe = httpProbe("/readyz", 5, 2)
	}

	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			// Parley workloads never call the Kubernetes API.
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext:              podSecurityContext(cc),
			ImagePullSecrets:             cc.Spec.ImagePullSecrets,
			NodeSelector:                 pt.NodeSelector,
			Tolerations:                  pt.Tolerations,
			Affinity:                     pt.Affinity,
			PriorityClassName:            pt.PriorityClassName,
			Containers:                   []corev1.Container{container},
			Volumes:                      volumes,
		},
	}
}

// DefaultRequests are the resource requests of a Parley container whose workload sets
// no resources, so no pod is BestEffort (first evicted, unbounded neighbours); no limits.
var DefaultRequests = map[string]corev1.ResourceList{
	RoleGateway:      {corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	RoleCore:         {corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	RoleNotification: {corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	RoleMigrate:      {corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
}

// resourcesOf is the spec's resources, or the role's DefaultRequests when it sets none.
func resourcesOf(role string, r corev1.ResourceRequirements) corev1.ResourceRequirements {
	if len(r.Requests) > 0 || len(r.Limits) > 0 || len(r.Claims) > 0 {
		return r
	}
	return corev1.ResourceRequirements{Requests: DefaultRequests[role].DeepCopy()}
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(HTTPPortName), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   2,
		FailureThreshold: failures,
	}
}

// parleyEnv is the per-role environment beyond the settings ConfigMap: the log level and
// every credential, each from its Secret. The signing key goes only to the roles that
// issue or verify tokens.
func parleyEnv(cc *chatv1alpha1.ChatCluster, role string, w chatv1alpha1.WorkloadSpec) []corev1.EnvVar {
	s := cc.Spec
	level := w.LogLevel
	if level == "" {
		level = s.LogLevel
	}
	if level == "" {
		level = "info"
	}
	env := []corev1.EnvVar{{Name: "PARLEY_LOG_LEVEL", Value: level}}
	if role == RoleMigrate {
		// parley migrate reads the database URL alone: no log level, and no credential
		// of Redis, Kafka or S3 in a pod that does not use it.
		env = nil
	}
	switch {
	case s.Postgres.External != nil:
		env = append(env, secretEnv("PARLEY_POSTGRES_URL", s.Postgres.External.URLSecret.Name, s.Postgres.External.URLSecret.Key))
	case s.Postgres.Managed != nil:
		env = append(env, secretEnv("PARLEY_POSTGRES_URL", PostgresCredentialsName(cc), PostgresURLKey))
	case s.Postgres.CNPG != nil:
		env = append(env, secretEnv("PARLEY_POSTGRES_URL", CNPGAppSecretName(cc), CNPGAppSecretURIKey))
	}
	if role == RoleMigrate {
		return env
	}
	if w.PostgresMaxConns != nil {
		// Only when set: otherwise the role's own default (core 16, gateway and
		// notification 8) applies, and stays documented in one place.
		env = append(env, corev1.EnvVar{Name: "PARLEY_POSTGRES_MAX_CONNS", Value: strconv.Itoa(int(*w.PostgresMaxConns))})
	}
	if r := s.Redis.External; r != nil {
		env = append(env, secretEnv("PARLEY_REDIS_URL", r.URLSecret.Name, r.URLSecret.Key))
		if r.Cluster {
			env = append(env, corev1.EnvVar{Name: "PARLEY_REDIS_CLUSTER", Value: "true"})
		}
	}
	if k := s.Kafka.External; k != nil && k.SASL != nil {
		env = append(env,
			secretEnv("PARLEY_KAFKA_SASL_USERNAME", k.SASL.CredentialsSecret, "username"),
			secretEnv("PARLEY_KAFKA_SASL_PASSWORD", k.SASL.CredentialsSecret, "password"))
	}
	if s3 := s.Files.S3; s3 != nil && role == RoleCore {
		env = append(env,
			secretEnv("PARLEY_FILES_S3_ACCESS_KEY", s3.CredentialsSecret, "accessKey"),
			secretEnv("PARLEY_FILES_S3_SECRET_KEY", s3.CredentialsSecret, "secretKey"))
	}
	if role == RoleGateway || role == RoleCore {
		// The previous key exists only for one token lifetime after a rotation.
		previous := secretEnv("PARLEY_JWT_PREVIOUS_SIGNING_KEY", SigningKeyName(cc), PreviousSigningKeyKey)
		previous.ValueFrom.SecretKeyRef.Optional = ptr.To(true)
		env = append(env, secretEnv("PARLEY_JWT_SIGNING_KEY", SigningKeyName(cc), SigningKeyKey), previous)
	}
	if wp := s.Notification.WebPush; wp != nil {
		if role == RoleNotification || role == RoleCore {
			env = append(env, secretEnv("PARLEY_VAPID_PUBLIC_KEY", wp.VAPIDKeysSecret, "publicKey"))
		}
		if role == RoleNotification {
			env = append(env, secretEnv("PARLEY_VAPID_PRIVATE_KEY", wp.VAPIDKeysSecret, "privateKey"))
		}
	}
	return env
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

// mergeEnv applies the user's variables over the operator's: same name replaces in
// place, new names are appended in the user's order. Duplicates would be rejected by
// server-side apply, whose env list is keyed by name.
func mergeEnv(base, overrides []corev1.EnvVar) []corev1.EnvVar {
	out := append([]corev1.EnvVar(nil), base...)
	index := make(map[string]int, len(out))
	for i, e := range out {
		index[e.Name] = i
	}
	for _, e := range overrides {
		if i, ok := index[e.Name]; ok {
			out[i] = e
			continue
		}
		index[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

func podSecurityContext(cc *chatv1alpha1.ChatCluster) *corev1.PodSecurityContext {
	if sc := cc.Spec.PodTemplate.SecurityContext; sc != nil {
		return sc.DeepCopy()
	}
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		RunAsGroup:     ptr.To[int64](65532),
		FSGroup:        ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func containerSecurityContext(cc *chatv1alpha1.ChatCluster) *corev1.SecurityContext {
	if sc := cc.Spec.PodTemplate.ContainerSecurityContext; sc != nil {
		return sc.DeepCopy()
	}
	return hardenedContainer(true)
}

func hardenedContainer(readOnlyRoot bool) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(readOnlyRoot),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// spreadConstraints fills in each constraint's selector with the workload's labels, so a
// single podTemplate entry spreads every workload on its own.
func spreadConstraints(cc *chatv1alpha1.ChatCluster, selector map[string]string) []corev1.TopologySpreadConstraint {
	var out []corev1.TopologySpreadConstraint
	for _, c := range cc.Spec.PodTemplate.TopologySpreadConstraints {
		c = *c.DeepCopy()
		if c.LabelSelector == nil {
			c.LabelSelector = &metav1.LabelSelector{MatchLabels: selector}
		}
		out = append(out, c)
	}
	return out
}

// Service of one workload.
func Service(cc *chatv1alpha1.ChatCluster, role string) *corev1.Service {
	selector := WorkloadLabels(cc, role)
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkloadName(cc, role), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: HTTPPortName, Port: HTTPPort, TargetPort: intstr.FromString(HTTPPortName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// PodDisruptionBudget lets node drains take one pod of a workload at a time.
func PodDisruptionBudget(cc *chatv1alpha1.ChatCluster, role string) *policyv1.PodDisruptionBudget {
	selector := WorkloadLabels(cc, role)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkloadName(cc, role), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: selector},
		},
	}
}

// HorizontalPodAutoscaler of one workload, or nil when the workload has no CPU
// autoscaling. Connections are not an HPA metric (that would need a custom-metrics
// adapter): the operator's connection autoscaler scales on them. With both, the HPA
// scales on CPU and its minReplicas is the connection autoscaler's count, so the two
// never fight: the gateway runs the larger of the two counts.
func HorizontalPodAutoscaler(cc *chatv1alpha1.ChatCluster, role string) *autoscalingv2.HorizontalPodAutoscaler {
	a := WorkloadSpec(cc, role).Autoscaling
	if a == nil || a.TargetCPUUtilization == nil {
		return nil
	}
	metrics := []autoscalingv2.MetricSpec{{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: a.TargetCPUUtilization},
		},
	}}
	minReplicas := a.MinReplicas
	if role == RoleGateway && ConnectionScaled(cc) {
		minReplicas = ConnectionFloor(cc)
	}
	selector := WorkloadLabels(cc, role)
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: WorkloadName(cc, role), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: WorkloadName(cc, role)},
			MinReplicas:    ptr.To(minReplicas),
			MaxReplicas:    a.MaxReplicas,
			Metrics:        metrics,
		},
	}
}
