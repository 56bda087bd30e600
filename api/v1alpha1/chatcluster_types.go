package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChatCluster is one Parley installation: the gateway, core and notification workloads,
// their settings, and (for evaluation) managed PostgreSQL, Redis and Kafka.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.gateway.replicas,statuspath=.status.gateway.replicas,selectorpath=.status.gateway.selector
// +kubebuilder:resource:shortName=chat,categories=parley
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`,description="True when a human is needed (failed migration, refused child)"
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.gateway.ready`,description="ready/desired gateway pods"
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.gateway.connections`,priority=1,description="open WebSocket connections (connection autoscaler)"
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 40",message="metadata.name must be at most 40 characters: child object names append suffixes to it"
type ChatCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ChatClusterSpec   `json:"spec"`
	Status ChatClusterStatus `json:"status,omitempty"`
}

// ChatClusterList is a list of ChatClusters.
//
// +kubebuilder:object:root=true
type ChatClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChatCluster `json:"items"`
}

// ChatClusterSpec is the desired state of a ChatCluster.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.version) && has(self.image))",message="set either version or image, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.core.autoscaling) || !has(self.core.autoscaling.targetConnectionsPerPod)",message="core.autoscaling.targetConnectionsPerPod is only valid for the gateway"
// +kubebuilder:validation:XValidation:rule="!has(self.notification.autoscaling) || !has(self.notification.autoscaling.targetConnectionsPerPod)",message="notification.autoscaling.targetConnectionsPerPod is only valid for the gateway"
// +kubebuilder:validation:XValidation:rule="!has(self.backup) || has(self.postgres.cnpg)",message="backup needs postgres.cnpg: CloudNativePG takes the backups"
// +kubebuilder:validation:XValidation:rule="!has(self.files.volume) || self.files.volume.accessMode == 'ReadWriteMany' || (!has(self.core.autoscaling) && self.core.replicas <= 1)",message="files.volume with accessMode ReadWriteOnce or ReadWriteOncePod serves only one core pod: use accessMode ReadWriteMany or files.s3, or run core with replicas 1 and no autoscaling"
type ChatClusterSpec struct {
	// Version of Parley to run, for example "0.1.0" or "v0.1.0". The image is the operator's
	// own image repository with this tag. Empty means the operator's own version.
	// Changing it runs `parley migrate` as a Job first and rolls the workloads only after
	// the Job succeeds.
	// +optional
	// +kubebuilder:validation:Pattern=`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`
	Version string `json:"version,omitempty"`

	// Image overrides the full image reference (repository:tag or repository@digest) of
	// every Parley workload. Mutually exclusive with version.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of every Parley container.
	// +optional
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets for every pod the operator creates.
	// +optional
	// +listType=map
	// +listMapKey=name
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// LogLevel of every workload unless the workload sets its own.
	// +optional
	// +kubebuilder:default=info
	// +kubebuilder:validation:Enum=debug;info;warn;error
	LogLevel string `json:"logLevel,omitempty"`

	// Gateway holds the WebSocket gateway: the only workload reachable from outside.
	// +optional
	// +kubebuilder:default={}
	Gateway WorkloadSpec `json:"gateway,omitempty"`

	// Core holds the REST API and the chat.message_sent consumer.
	// +optional
	// +kubebuilder:default={}
	Core WorkloadSpec `json:"core,omitempty"`

	// Notification holds the fan-out to gateways and Web Push.
	// +optional
	// +kubebuilder:default={}
	Notification NotificationSpec `json:"notification,omitempty"`

	// Postgres is the database: exactly one of external, managed or cnpg.
	Postgres PostgresSpec `json:"postgres"`

	// Redis holds presence and the per-gateway channels: exactly one of external or managed.
	Redis RedisSpec `json:"redis"`

	// Kafka is the message bus: exactly one of external or managed.
	Kafka KafkaSpec `json:"kafka"`

	// Files configures uploads.
	// +optional
	// +kubebuilder:default={}
	Files FilesSpec `json:"files,omitempty"`

	// Auth configures registration and tokens.
	// +optional
	// +kubebuilder:default={}
	Auth AuthSpec `json:"auth,omitempty"`

	// Limits protect the cluster from abusive or mistaken clients.
	// +optional
	// +kubebuilder:default={}
	Limits LimitsSpec `json:"limits,omitempty"`

	// Ingress exposes the gateway. Without it the gateway is reachable only through its
	// Service.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// PodTemplate shapes every pod the operator creates (workloads, migration Jobs and
	// managed dependencies).
	// +optional
	PodTemplate PodTemplateSpec `json:"podTemplate,omitempty"`

	// Backup schedules base backups of the database and archives its WAL (postgres.cnpg
	// only): a CloudNativePG ScheduledBackup NAME-postgres and the Cluster's backup
	// section.
	// +optional
	Backup *BackupSpec `json:"backup,omitempty"`

	// Paused stops reconciliation: nothing is created, changed or deleted until it is
	// false again. Status still reports the Paused condition.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// WorkloadSpec is the shape of one Parley workload (a Deployment).
//
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",message="autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.autoscaling.targetCPUUtilization) || (has(self.resources) && ((has(self.resources.requests) && 'cpu' in self.resources.requests) || (has(self.resources.limits) && 'cpu' in self.resources.limits)))",message="autoscaling.targetCPUUtilization needs resources.requests.cpu: the utilisation is a percentage of the requested CPU"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(oldSelf.autoscaling) || (has(self.replicas) ? self.replicas : 2) == (has(oldSelf.replicas) ? oldSelf.replicas : 2)",message="replicas cannot change while autoscaling is set: the autoscaler (the HorizontalPodAutoscaler, or the operator's connection autoscaler for targetConnectionsPerPod) sets the pod count (kubectl scale included); change autoscaling.minReplicas and maxReplicas, or remove autoscaling"
type WorkloadSpec struct {
	// Replicas of the workload when autoscaling is not set (with autoscaling set it cannot
	// change: the autoscaler owns the count). The gateway's replicas are
	// also the ChatCluster's scale subresource (kubectl scale chat/NAME --replicas=N).
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the workload's container. When it sets neither requests nor limits the
	// container requests cpu 100m and memory 128Mi (notification: 50m and 64Mi), with no
	// limits, so no pod is BestEffort.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Autoscaling scales the workload between minReplicas and maxReplicas: on CPU with a
	// HorizontalPodAutoscaler, on open connections (gateway) with the operator's built-in
	// connection autoscaler; replicas is then ignored.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// LogLevel of this workload; the ChatCluster's logLevel when empty.
	// +optional
	// +kubebuilder:validation:Enum=debug;info;warn;error
	LogLevel string `json:"logLevel,omitempty"`

	// Env adds or overrides environment variables of the container. A variable with the
	// name of one the operator sets replaces it.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`

	// PostgresMaxConns is the most PostgreSQL connections each pod of the workload opens
	// (its pool size, PARLEY_POSTGRES_MAX_CONNS). Unset, the role's default applies: core
	// 16, gateway 8, notification 8. Every pod holds up to this many, so replicas (or
	// autoscaling.maxReplicas) times this, summed over the workloads, must stay below the
	// database's max_connections.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	PostgresMaxConns *int32 `json:"postgresMaxConns,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler.
//
// +kubebuilder:validation:XValidation:rule="has(self.targetCPUUtilization) || has(self.targetConnectionsPerPod)",message="set targetCPUUtilization, targetConnectionsPerPod or both"
type AutoscalingSpec struct {
	// MinReplicas is the lower bound.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the upper bound.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetCPUUtilization is the average CPU utilisation, in percent of the requested
	// CPU, that the autoscaler aims at. Needs resources.requests.cpu.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`

	// TargetConnectionsPerPod (gateway only) is the average number of open WebSocket
	// connections per gateway pod to keep. The operator's built-in connection autoscaler
	// reads each gateway pod's gauge parley_gateway_connections from its /metrics over the
	// pod network (no custom-metrics adapter) and sets the replicas itself; with
	// targetCPUUtilization too, the HorizontalPodAutoscaler scales on CPU and the
	// connection autoscaler sets its minReplicas (the larger of the two counts wins).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	TargetConnectionsPerPod *int32 `json:"targetConnectionsPerPod,omitempty"`

	// ScaleUpWindowSeconds (connection autoscaler) is how long a higher count must be
	// asked for before the gateway grows: the lowest recommendation of the window is
	// used, so a spike shorter than the window adds no pods.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	ScaleUpWindowSeconds *int32 `json:"scaleUpWindowSeconds,omitempty"`

	// ScaleDownWindowSeconds (connection autoscaler) is how long a lower count must be
	// asked for before the gateway shrinks: the highest recommendation of the window is
	// used, so a dip shorter than the window removes no pods (each removal makes its
	// clients reconnect).
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	ScaleDownWindowSeconds *int32 `json:"scaleDownWindowSeconds,omitempty"`

	// ScaleUpPods (connection autoscaler) bounds one step up: at most
	// max(scaleUpPods, current replicas) pods are added per decision, so the count at
	// most doubles.
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	ScaleUpPods *int32 `json:"scaleUpPods,omitempty"`

	// ScaleDownPods (connection autoscaler) bounds one step down: at most
	// max(scaleDownPods, 10% of current replicas) pods are removed per decision.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	ScaleDownPods *int32 `json:"scaleDownPods,omitempty"`

	// OperatorSelector (connection autoscaler) selects the operator's pods, as a
	// NetworkPolicy peer: the NetworkPolicy NAME-gateway admits them to the gateway's port
	// 8080, where the operator reads /metrics. Default: the pods labelled
	// app.kubernetes.io/name=parley-operator of the namespace parley-system.
	// +optional
	// +kubebuilder:default={namespaceSelector: {matchLabels: {"kubernetes.io/metadata.name": "parley-system"}}, podSelector: {matchLabels: {"app.kubernetes.io/name": "parley-operator"}}}
	OperatorSelector *PeerSelector `json:"operatorSelector,omitempty"`
}

// NotificationSpec is the notification workload.
type NotificationSpec struct {
	WorkloadSpec `json:",inline"`

	// WebPush enables Web Push to users without a live connection.
	// +optional
	WebPush *WebPushSpec `json:"webPush,omitempty"`
}

// WebPushSpec points at the VAPID key pair.
type WebPushSpec struct {
	// VAPIDKeysSecret names a Secret with the keys publicKey and privateKey (base64url,
	// as generated by any Web Push library).
	// +kubebuilder:validation:MinLength=1
	VAPIDKeysSecret string `json:"vapidKeysSecret"`
	// Subject is the contact push services may use about this sender: a mailto: address
	// or an https: URL (RFC 8292).
	// +kubebuilder:validation:Pattern=`^(mailto:[^@]+@.+|https://.+)$`
	Subject string `json:"subject"`
}

// PostgresSpec chooses the database.
//
// +kubebuilder:validation:XValidation:rule="(has(self.external) ? 1 : 0) + (has(self.managed) ? 1 : 0) + (has(self.cnpg) ? 1 : 0) == 1",message="set exactly one of postgres.external, postgres.managed or postgres.cnpg"
type PostgresSpec struct {
	// External is a PostgreSQL you run.
	// +optional
	External *ExternalPostgres `json:"external,omitempty"`
	// Managed runs a single-instance PostgreSQL StatefulSet. For evaluation only: no
	// replication, no backups.
	// +optional
	Managed *ManagedDependency `json:"managed,omitempty"`
	// CNPG has the CloudNativePG operator (installed separately) run the database: the
	// operator creates a postgresql.cnpg.io/v1 Cluster NAME-postgres and Parley connects
	// to its NAME-postgres-rw Service with the credentials CloudNativePG generates
	// (Secret NAME-postgres-app, key uri). For production.
	// +optional
	CNPG *CNPGPostgres `json:"cnpg,omitempty"`
}

// CNPGPostgres is the shape of the CloudNativePG Cluster.
type CNPGPostgres struct {
	// Instances of PostgreSQL: one primary and instances-1 streaming replicas, which
	// CloudNativePG promotes on failure.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Instances int32 `json:"instances,omitempty"`
	// ImageName is the PostgreSQL image; CloudNativePG's default when empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	ImageName string `json:"imageName,omitempty"`
	// Storage of each instance's data volume. CloudNativePG grows the claims when size
	// grows (if the storage class allows expansion).
	// +optional
	// +kubebuilder:default={}
	Storage CNPGStorage `json:"storage,omitempty"`
	// Resources of each PostgreSQL instance.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// Recovery bootstraps a new database from a backup in an object store (CloudNativePG
	// bootstrap.recovery) instead of an empty one. Only read when the Cluster is created.
	// +optional
	Recovery *CNPGRecovery `json:"recovery,omitempty"`
}

// CNPGStorage is the data volume of each CloudNativePG instance.
type CNPGStorage struct {
	// Size of the volume.
	// +optional
	// +kubebuilder:default="10Gi"
	Size resource.Quantity `json:"size,omitempty"`
	// StorageClassName of the volumes; the cluster's default class when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// CNPGRecovery names the backup a new database is restored from.
type CNPGRecovery struct {
	// ObjectStore holds the backups (the spec.backup.objectStore of the ChatCluster that
	// made them).
	ObjectStore ObjectStore `json:"objectStore"`
	// ServerName is the name of the CloudNativePG Cluster that made the backups: the old
	// ChatCluster's NAME-postgres.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName"`
	// TargetTime restores up to this time (RFC 3339, point-in-time recovery); the end of
	// the archived WAL when empty.
	// +optional
	// +kubebuilder:validation:Format=date-time
	TargetTime string `json:"targetTime,omitempty"`
}

// BackupSpec has CloudNativePG back the database up to an object store.
type BackupSpec struct {
	// Schedule of the base backups, a cron expression with seconds (six fields, as
	// CloudNativePG's ScheduledBackup reads it), for example "0 0 2 * * *" (02:00 daily).
	// The WAL is archived continuously in between, so any moment can be restored.
	// +kubebuilder:validation:Pattern=`^\S+( \S+){5}$`
	Schedule string `json:"schedule"`
	// RetentionPolicy is how long backups are kept: a number and d (days), w (weeks) or
	// m (months).
	// +optional
	// +kubebuilder:default="30d"
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]*[dwm]$`
	RetentionPolicy string `json:"retentionPolicy,omitempty"`
	// ObjectStore is where the base backups and the WAL archive go.
	ObjectStore ObjectStore `json:"objectStore"`
}

// ObjectStore is an S3-compatible bucket path for CloudNativePG's Barman backups.
type ObjectStore struct {
	// DestinationPath, for example s3://backups/parley.
	// +kubebuilder:validation:Pattern=`^s3://.+`
	DestinationPath string `json:"destinationPath"`
	// EndpointURL of an S3-compatible service other than AWS, for example
	// https://minio.example.com.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	EndpointURL string `json:"endpointURL,omitempty"`
	// CredentialsSecret names a Secret with the keys accessKey and secretKey (like
	// files.s3), read by CloudNativePG.
	// +kubebuilder:validation:MinLength=1
	CredentialsSecret string `json:"credentialsSecret"`
}

// ExternalPostgres is a database the ChatCluster connects to.
type ExternalPostgres struct {
	// URLSecret selects the Secret key holding the connection URL
	// (postgres://user:password@host:5432/db?sslmode=require).
	URLSecret SecretKeyRef `json:"urlSecret"`
}

// RedisSpec chooses Redis.
//
// +kubebuilder:validation:XValidation:rule="has(self.external) != has(self.managed)",message="set exactly one of redis.external or redis.managed"
type RedisSpec struct {
	// External is a Redis you run.
	// +optional
	External *ExternalRedis `json:"external,omitempty"`
	// Managed runs a single-instance Redis StatefulSet. For evaluation only.
	// +optional
	Managed *ManagedDependency `json:"managed,omitempty"`
}

// ExternalRedis is a Redis the ChatCluster connects to.
type ExternalRedis struct {
	// URLSecret selects the Secret key holding the URL (redis://:password@host:6379/0 or
	// rediss:// for TLS).
	URLSecret SecretKeyRef `json:"urlSecret"`
	// Cluster tells that the URL names seed nodes of a Redis Cluster
	// (redis://host:port,redis://host:port,...); keys are hash-tagged and routed with
	// sharded pub/sub. Every role that gets the URL gets PARLEY_REDIS_CLUSTER=true.
	// +optional
	Cluster bool `json:"cluster,omitempty"`
}

// KafkaSpec chooses the bus.
//
// +kubebuilder:validation:XValidation:rule="has(self.external) != has(self.managed)",message="set exactly one of kafka.external or kafka.managed"
type KafkaSpec struct {
	// External is a Kafka you run (for example with Strimzi).
	// +optional
	External *ExternalKafka `json:"external,omitempty"`
	// Managed runs a single-node Kafka in KRaft mode. For evaluation only.
	// +optional
	Managed *ManagedDependency `json:"managed,omitempty"`
	// Partitions of the topics Parley creates. A room's messages stay in one partition,
	// so this bounds the parallelism of core and notification.
	// +optional
	// +kubebuilder:default=12
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Partitions int32 `json:"partitions,omitempty"`
}

// ExternalKafka is a Kafka the ChatCluster connects to.
type ExternalKafka struct {
	// BootstrapServers are host:port pairs.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[^:,\s]+:[0-9]{1,5}$`
	BootstrapServers []string `json:"bootstrapServers"`
	// TLS connects with TLS, verifying the brokers against the image's CA roots.
	// +optional
	TLS bool `json:"tls,omitempty"`
	// SASL authenticates to the brokers.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`
}

// KafkaSASL is SASL authentication for Kafka.
type KafkaSASL struct {
	// Mechanism is the SASL mechanism.
	// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
	Mechanism string `json:"mechanism"`
	// CredentialsSecret names a Secret with the keys username and password.
	// +kubebuilder:validation:MinLength=1
	CredentialsSecret string `json:"credentialsSecret"`
}

// SecretKeyRef selects one key of a Secret in the ChatCluster's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key in the Secret.
	// +optional
	// +kubebuilder:default=url
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key,omitempty"`
}

// ManagedDependency is a single-instance StatefulSet with a PersistentVolumeClaim.
type ManagedDependency struct {
	// Image overrides the dependency's image (defaults: postgres:17-alpine,
	// redis:8-alpine, apache/kafka:4.1.0).
	// +optional
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image,omitempty"`
	// Storage of the data volume. Immutable: a StatefulSet's volume claim template cannot
	// change (grow the claim data-NAME-<dependency>-0 directly if its class allows).
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="managed storage is immutable: the StatefulSet's volume claim template cannot change"
	Storage StorageSpec `json:"storage,omitempty"`
	// Resources of the dependency's container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// StorageSpec is a PersistentVolumeClaim's shape.
type StorageSpec struct {
	// Size of the volume; 0 means the default, 10Gi. It never shrinks; files.volume can
	// grow (if the storage class allows expansion), managed storage is immutable.
	// +optional
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('0')) >= 0",message="size must not be negative"
	// +kubebuilder:validation:XValidation:rule="(quantity(string(self)).compareTo(quantity('0')) == 0 ? quantity('10Gi') : quantity(string(self))).compareTo(quantity(string(oldSelf)).compareTo(quantity('0')) == 0 ? quantity('10Gi') : quantity(string(oldSelf))) >= 0",message="size cannot shrink: a PersistentVolumeClaim only grows"
	Size resource.Quantity `json:"size,omitempty"`
	// StorageClassName of the volume; the cluster's default class when unset ("" asks for
	// no class: a pre-provisioned volume). Immutable, and it cannot be set or removed
	// after creation.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == '' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="storageClassName must be a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storageClassName is immutable"
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// FilesSpec configures uploads.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.volume) && has(self.s3))",message="set at most one of files.volume or files.s3"
type FilesSpec struct {
	// MaxUploadBytes is the largest accepted upload.
	// +optional
	// +kubebuilder:default=26214400
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5368709120
	MaxUploadBytes int64 `json:"maxUploadBytes,omitempty"`
	// Volume stores files on a PersistentVolumeClaim mounted by core. With more than one
	// core pod on different nodes it needs accessMode ReadWriteMany.
	// +optional
	Volume *FilesVolume `json:"volume,omitempty"`
	// S3 stores files in an S3-compatible bucket.
	// +optional
	S3 *FilesS3 `json:"s3,omitempty"`
}

// FilesVolume is the PersistentVolumeClaim of the files. Its storage class and access
// mode are those of the claim, which cannot change once it exists.
//
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName)",message="files.volume.storageClassName cannot be set or removed after creation: the claim's storage class is immutable"
// +kubebuilder:validation:XValidation:rule="self.accessMode == oldSelf.accessMode",message="files.volume.accessMode is immutable: the claim's access mode cannot change"
type FilesVolume struct {
	StorageSpec `json:",inline"`
	// AccessMode of the claim.
	// +optional
	// +kubebuilder:default=ReadWriteOnce
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany;ReadWriteOncePod
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`
}

// FilesS3 is an S3-compatible bucket.
type FilesS3 struct {
	// Endpoint URL, for example https://s3.eu-west-1.amazonaws.com.
	// +kubebuilder:validation:Pattern=`^https?://`
	Endpoint string `json:"endpoint"`
	// Bucket name.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`
	// CredentialsSecret names a Secret with the keys accessKey and secretKey.
	// +kubebuilder:validation:MinLength=1
	CredentialsSecret string `json:"credentialsSecret"`
}

// AuthSpec configures accounts and tokens. The JWT signing key is generated into the
// Secret NAME-signing-key on first reconcile and never rotated by the operator; delete
// that Secret to rotate it (every session then signs in again).
type AuthSpec struct {
	// Registration: open (anyone), invite (with an invitation) or closed (no new accounts).
	// +optional
	// +kubebuilder:default=open
	// +kubebuilder:validation:Enum=open;closed;invite
	Registration string `json:"registration,omitempty"`
	// TokenTTL is the lifetime of an access token, for example 24h or 30m.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(s|m|h))+$`
	TokenTTL string `json:"tokenTTL,omitempty"`
}

// LimitsSpec are per-user and per-room limits.
type LimitsSpec struct {
	// MaxMessageBytes is the largest accepted message body.
	// +optional
	// +kubebuilder:default=16384
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	MaxMessageBytes int32 `json:"maxMessageBytes,omitempty"`
	// MessagesPerSecond a user may send (sustained rate, per user).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MessagesPerSecond int32 `json:"messagesPerSecond,omitempty"`
	// MaxRoomMembers is the largest room.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1000000
	MaxRoomMembers int32 `json:"maxRoomMembers,omitempty"`
}

// IngressSpec exposes the gateway through an Ingress. WebSockets are long-lived: set the
// controller's read/send timeouts through annotations (for ingress-nginx
// nginx.ingress.kubernetes.io/proxy-read-timeout and proxy-send-timeout, e.g. "3600").
type IngressSpec struct {
	// Host name, for example chat.example.com.
	// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`
	// ClassName of the Ingress; the cluster's default class when empty.
	// +optional
	ClassName *string `json:"className,omitempty"`
	// TLSSecretName holds the certificate for host; plain HTTP when empty.
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
	// Annotations of the Ingress.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// TrustedProxies are the CIDRs of the ingress controller's pods or nodes. Core then
	// believes their X-Forwarded-For, so login throttling counts each client's address
	// instead of the ingress's (without it, every client shares one address).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[0-9a-fA-F.:]+/[0-9]{1,3}$`
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// ControllerSelector selects the ingress controller's pods, as a NetworkPolicy peer:
	// the NetworkPolicy NAME-gateway admits them, and nothing else, to port 8080 of the
	// gateway and core pods. A podSelector alone means pods of the ChatCluster's own
	// namespace. Default: every pod of the namespace ingress-nginx.
	// +optional
	// +kubebuilder:default={namespaceSelector: {matchLabels: {"kubernetes.io/metadata.name": "ingress-nginx"}}}
	ControllerSelector *PeerSelector `json:"controllerSelector,omitempty"`
}

// PeerSelector selects pods, possibly in other namespaces, like a NetworkPolicy peer.
//
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="set namespaceSelector, podSelector or both"
type PeerSelector struct {
	// NamespaceSelector selects namespaces by label ({} is every namespace); the pods of
	// the ChatCluster's namespace when unset.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSelector selects pods by label in those namespaces ({} or unset: all of them).
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// PodTemplateSpec shapes every pod the operator creates.
type PodTemplateSpec struct {
	// NodeSelector of the pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of the pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints of the pods. The operator adds each workload's label
	// selector when labelSelector is empty.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// Annotations added to the pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels added to the pods. They cannot replace the operator's own labels.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// PriorityClassName of the pods.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// SecurityContext replaces the pod security context of the Parley pods (default:
	// non-root 65532, fsGroup 65532, seccomp RuntimeDefault).
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`
	// ContainerSecurityContext replaces the container security context of the Parley
	// containers (default: read-only root filesystem, no privilege escalation, every
	// capability dropped).
	// +optional
	ContainerSecurityContext *corev1.SecurityContext `json:"containerSecurityContext,omitempty"`
}

// ChatClusterStatus is the observed state of a ChatCluster.
type ChatClusterStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Progressing and Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Gateway replica counts.
	// +optional
	Gateway WorkloadStatus `json:"gateway,omitempty"`
	// Core replica counts.
	// +optional
	Core WorkloadStatus `json:"core,omitempty"`
	// Notification replica counts.
	// +optional
	Notification WorkloadStatus `json:"notification,omitempty"`
	// Version the workloads run (the tag of image).
	// +optional
	Version string `json:"version,omitempty"`
	// Image the workloads run. It changes only after the migration Job for the new image
	// succeeded.
	// +optional
	Image string `json:"image,omitempty"`
	// Endpoint is the URL clients connect to.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Postgres reports the CloudNativePG Cluster (postgres.cnpg only).
	// +optional
	Postgres *PostgresStatus `json:"postgres,omitempty"`
	// Backup reports the last successful backup (spec.backup only).
	// +optional
	Backup *BackupStatus `json:"backup,omitempty"`
}

// PostgresStatus is what the CloudNativePG Cluster reports.
type PostgresStatus struct {
	// Cluster is the CloudNativePG Cluster's name.
	Cluster string `json:"cluster"`
	// Ready is the Cluster's Ready condition: True, False or Unknown.
	Ready metav1.ConditionStatus `json:"ready"`
	// Phase is the Cluster's status.phase, for example "Cluster in healthy state".
	// +optional
	Phase string `json:"phase,omitempty"`
	// ReadyInstances out of the Cluster's instances.
	// +optional
	ReadyInstances int32 `json:"readyInstances,omitempty"`
	// CurrentPrimary is the pod of the primary instance.
	// +optional
	CurrentPrimary string `json:"currentPrimary,omitempty"`
}

// BackupStatus reports the backups CloudNativePG took.
type BackupStatus struct {
	// LastSuccessfulBackup is when the newest successful backup completed.
	// +optional
	LastSuccessfulBackup *metav1.Time `json:"lastSuccessfulBackup,omitempty"`
	// LastSuccessfulBackupName is that Backup object's name.
	// +optional
	LastSuccessfulBackupName string `json:"lastSuccessfulBackupName,omitempty"`
	// FirstRecoverabilityPoint is the earliest time the database can be restored to.
	// +optional
	FirstRecoverabilityPoint *metav1.Time `json:"firstRecoverabilityPoint,omitempty"`
	// LastFailedBackup is when the newest failed backup was started, if it is newer than
	// the last successful one.
	// +optional
	LastFailedBackup *metav1.Time `json:"lastFailedBackup,omitempty"`
}

// WorkloadStatus counts the pods of one workload.
type WorkloadStatus struct {
	// Replicas are the workload's current pods (the scale subresource reads the
	// gateway's).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas passing their readiness probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// UpdatedReplicas running the current pod template.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// Ready is "ready/desired", for kubectl get.
	// +optional
	Ready string `json:"ready,omitempty"`
	// Selector is the workload's label selector (for the scale subresource).
	// +optional
	Selector string `json:"selector,omitempty"`
	// Connections is the sum of the open WebSocket connections the gateway's pods
	// reported at the connection autoscaler's last sample (gateway with
	// targetConnectionsPerPod only).
	// +optional
	Connections *int64 `json:"connections,omitempty"`
	// Autoscaler is the connection autoscaler's state (gateway with
	// targetConnectionsPerPod only).
	// +optional
	Autoscaler *ConnectionAutoscalerStatus `json:"autoscaler,omitempty"`
}

// ConnectionAutoscalerStatus is the built-in connection autoscaler's state. It is kept in
// the status so that a restarted or newly elected operator keeps the stabilization
// window.
type ConnectionAutoscalerStatus struct {
	// CurrentReplicas of the gateway Deployment at the last sample.
	CurrentReplicas int32 `json:"currentReplicas"`
	// DesiredReplicas the autoscaler set: the Deployment's replicas, or with
	// targetCPUUtilization the HorizontalPodAutoscaler's minReplicas.
	DesiredReplicas int32 `json:"desiredReplicas"`
	// MeasuredPods answered at the last sample.
	// +optional
	MeasuredPods int32 `json:"measuredPods,omitempty"`
	// LastSampleTime is when the pods were last read.
	// +optional
	LastSampleTime *metav1.Time `json:"lastSampleTime,omitempty"`
	// LastScaleTime is when desiredReplicas last changed.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// LastScaleReason says why it changed.
	// +optional
	LastScaleReason string `json:"lastScaleReason,omitempty"`
	// Recommendations within the longer stabilization window, oldest first: each holds
	// from its time until the next one's.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Recommendations []Recommendation `json:"recommendations,omitempty"`
}

// Recommendation is one raw replica count the connection autoscaler computed.
type Recommendation struct {
	// Time it was first computed.
	Time metav1.Time `json:"time"`
	// Replicas recommended.
	Replicas int32 `json:"replicas"`
}

// Condition types.
const (
	// ConditionReady is True while the ChatCluster serves: a migration has succeeded, every
	// managed dependency has its pod ready and every workload has at least its desired
	// count of available pods, whichever version they run. It stays True through a
	// rollout, which never goes below the desired count; Progressing carries the rollout.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a migration or a rollout is under way, including
	// a staged upgrade whose later workloads still run the previous image.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something needs a human: a failed migration, a
	// missing Secret or a reconcile error.
	ConditionDegraded = "Degraded"
)

// Condition reasons.
const (
	ReasonAllReady          = "AllWorkloadsReady"
	ReasonWorkloadsNotReady = "WorkloadsNotReady"
	ReasonMigrating         = "Migrating"
	ReasonMigrationFailed   = "MigrationFailed"
	ReasonRollingOut        = "RollingOut"
	ReasonStable            = "Stable"
	ReasonReconcileError    = "ReconcileError"
	ReasonAsExpected        = "AsExpected"
	ReasonPaused            = "Paused"
	// ReasonSecretMissing: a Secret the spec names, or one of its keys, does not exist;
	// the pods that read it and the migration Job are held back until it does.
	ReasonSecretMissing = "SecretMissing"
	// ReasonCRDMissing: the spec asks for another operator's kind (postgres.cnpg) whose
	// CRD is not installed; nothing of that kind is created until it is.
	ReasonCRDMissing = "CRDMissing"
	// ReasonDatabaseNotReady: the CloudNativePG Cluster is not Ready; the migration and
	// the rollout wait for it.
	ReasonDatabaseNotReady = "DatabaseNotReady"
	// ReasonPending: the operator has seen the ChatCluster and queued its first reconcile;
	// nothing is created yet. The first reconcile replaces it.
	ReasonPending = "Pending"
)
