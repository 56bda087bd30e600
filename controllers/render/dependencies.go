package render

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

const (
	postgresPort     = 5432
	redisPort        = 6379
	kafkaPort        = 9092
	kafkaControlPort = 9093
	postgresUser     = "parley"
	postgresDatabase = "parley"
)

// Default images of the managed dependencies, by short name so the cluster's registry
// configuration decides where they come from.
const (
	DefaultPostgresImage = "postgres:17-alpine"
	DefaultRedisImage    = "redis:8-alpine"
	DefaultKafkaImage    = "apache/kafka:4.1.0"
)

// ManagedDependency returns the spec of a managed dependency, or nil when it is external.
func ManagedDependency(cc *chatv1alpha1.ChatCluster, dep string) *chatv1alpha1.ManagedDependency {
	switch dep {
	case DepPostgres:
		return cc.Spec.Postgres.Managed
	case DepRedis:
		return cc.Spec.Redis.Managed
	default:
		return cc.Spec.Kafka.Managed
	}
}

// dependencyShape is what differs between the three managed dependencies.
type dependencyShape struct {
	image, dataPath string
	port            int32
	uid             int64
	readOnlyRoot    bool
	args            []string
	env             []corev1.EnvVar
	extraMounts     map[string]string // volume name -> path, as emptyDirs
	ready           corev1.ProbeHandler
}

func shapeOf(cc *chatv1alpha1.ChatCluster, dep string) dependencyShape {
	tcp := func(port int32) corev1.ProbeHandler {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port)}}
	}
	switch dep {
	case DepPostgres:
		return dependencyShape{
			image: DefaultPostgresImage, dataPath: "/var/lib/postgresql/data", port: postgresPort, uid: 70, readOnlyRoot: true,
			env: []corev1.EnvVar{
				{Name: "POSTGRES_USER", Value: postgresUser},
				{Name: "POSTGRES_DB", Value: postgresDatabase},
				secretEnv("POSTGRES_PASSWORD", PostgresCredentialsName(cc), PostgresPasswordKey),
				{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"},
			},
			extraMounts: map[string]string{"run": "/var/run/postgresql", "tmp": "/tmp"},
			ready: corev1.ProbeHandler{Exec: &corev1.ExecAction{
				Command: []string{"pg_isready", "-U", postgresUser, "-d", postgresDatabase},
			}},
		}
	case DepRedis:
		return dependencyShape{
			image: DefaultRedisImage, dataPath: "/data", port: redisPort, uid: 999, readOnlyRoot: true,
			args:  []string{"redis-server", "--appendonly", "yes", "--dir", "/data"},
			ready: tcp(redisPort),
		}
	default:
		host := DependencyName(cc, DepKafka)
		return dependencyShape{
			image: DefaultKafkaImage, dataPath: "/var/lib/kafka/data", port: kafkaPort, uid: 1000,
			env: []corev1.EnvVar{
				{Name: "CLUSTER_ID", Value: kafkaClusterID(cc)},
				{Name: "KAFKA_NODE_ID", Value: "1"},
				{Name: "KAFKA_PROCESS_ROLES", Value: "broker,controller"},
				{Name: "KAFKA_LISTENERS", Value: "PLAINTEXT://:" + strconv.Itoa(kafkaPort) + ",CONTROLLER://:" + strconv.Itoa(kafkaControlPort)},
				{Name: "KAFKA_ADVERTISED_LISTENERS", Value: "PLAINTEXT://" + host + ":" + strconv.Itoa(kafkaPort)},
				{Name: "KAFKA_CONTROLLER_LISTENER_NAMES", Value: "CONTROLLER"},
				{Name: "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", Value: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"},
				{Name: "KAFKA_CONTROLLER_QUORUM_VOTERS", Value: "1@localhost:" + strconv.Itoa(kafkaControlPort)},
				{Name: "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", Value: "1"},
				{Name: "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", Value: "1"},
				{Name: "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", Value: "1"},
				{Name: "KAFKA_NUM_PARTITIONS", Value: strconv.Itoa(int(cc.Spec.Kafka.Partitions))},
				{Name: "KAFKA_LOG_DIRS", Value: "/var/lib/kafka/data"},
				// Parley's consumers use a 2 s session so a killed replica's partitions
				// move in seconds (docs/protocol.md); Kafka refuses sessions under its
				// minimum (6 s by default) and delays the first join of an empty group by 3 s.
				{Name: "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", Value: "1000"},
				{Name: "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", Value: "0"},
			},
			ready: tcp(kafkaPort),
		}
	}
}

// kafkaClusterID derives KRaft's cluster id (16 bytes, base64url) from the ChatCluster's
// identity, so a re-render never formats the log directory for a different cluster.
func kafkaClusterID(cc *chatv1alpha1.ChatCluster) string {
	sum := sha256.Sum256([]byte(cc.Namespace + "/" + cc.Name))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// DependencyStatefulSet is a single-instance StatefulSet with its data on a claim from
// the volumeClaimTemplate, or nil when dep is external.
func DependencyStatefulSet(cc *chatv1alpha1.ChatCluster, dep string) *appsv1.StatefulSet {
	m := ManagedDependency(cc, dep)
	if m == nil {
		return nil
	}
	shape := shapeOf(cc, dep)
	image := shape.image
	if m.Image != "" {
		image = m.Image
	}
	selector := DependencyLabels(cc, dep)
	podLabels := map[string]string{}
	for k, v := range cc.Spec.PodTemplate.Labels {
		podLabels[k] = v
	}
	for k, v := range objectLabels(selector) {
		podLabels[k] = v
	}
	podAnnotations := map[string]string{}
	for k, v := range cc.Spec.PodTemplate.Annotations {
		podAnnotations[k] = v
	}

	mounts := []corev1.VolumeMount{{Name: "data", MountPath: shape.dataPath}}
	var volumes []corev1.Volume
	for _, name := range []string{"run", "tmp"} {
		if path, ok := shape.extraMounts[name]; ok {
			mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: path})
			volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}
	}
	size := m.Storage.Size
	if size.IsZero() {
		size = resource.MustParse("10Gi")
	}
	pt := cc.Spec.PodTemplate
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: DependencyName(cc, dep), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: DependencyName(cc, dep),
			Selector:    &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(shape.uid),
						RunAsGroup:     ptr.To(shape.uid),
						FSGroup:        ptr.To(shape.uid),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					ImagePullSecrets:  cc.Spec.ImagePullSecrets,
					NodeSelector:      pt.NodeSelector,
					Tolerations:       pt.Tolerations,
					Affinity:          pt.Affinity,
					PriorityClassName: pt.PriorityClassName,
					Containers: []corev1.Container{{
						Name:            dep,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            shape.args,
						Env:             shape.env,
						Ports:           []corev1.ContainerPort{{Name: dep, ContainerPort: shape.port, Protocol: corev1.ProtocolTCP}},
						Resources:       m.Resources,
						ReadinessProbe:  &corev1.Probe{ProbeHandler: shape.ready, PeriodSeconds: 5, TimeoutSeconds: 3},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(shape.port)}},
							PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: 6, InitialDelaySeconds: 30,
						},
						SecurityContext: hardenedContainer(shape.readOnlyRoot),
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: objectLabels(selector)},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: m.Storage.StorageClassName,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
				},
			}},
		},
	}
}

// DependencyService fronts a managed dependency, or is nil when dep is external.
func DependencyService(cc *chatv1alpha1.ChatCluster, dep string) *corev1.Service {
	if ManagedDependency(cc, dep) == nil {
		return nil
	}
	shape := shapeOf(cc, dep)
	selector := DependencyLabels(cc, dep)
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: DependencyName(cc, dep), Namespace: cc.Namespace, Labels: objectLabels(selector)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: dep, Port: shape.port, TargetPort: intstr.FromInt32(shape.port), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// FilesClaim is the PersistentVolumeClaim of uploaded files, or nil without files.volume.
func FilesClaim(cc *chatv1alpha1.ChatCluster) *corev1.PersistentVolumeClaim {
	v := cc.Spec.Files.Volume
	if v == nil || cc.Spec.Files.S3 != nil {
		return nil
	}
	size := v.Size
	if size.IsZero() {
		size = resource.MustParse("10Gi")
	}
	mode := v.AccessMode
	if mode == "" {
		mode = corev1.ReadWriteOnce
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: FilesClaimName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			StorageClassName: v.StorageClassName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}
