// Package render turns a ChatCluster into the Kubernetes objects it owns. Every function
// is pure: a ChatCluster and explicit inputs in, objects out, no client, so each object
// is covered by a golden file under testdata/.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Roles of the parley binary that the operator deploys.
const (
	RoleGateway      = "gateway"
	RoleCore         = "core"
	RoleNotification = "notification"
	RoleMigrate      = "migrate"
)

// Workloads in the order an upgrade rolls them: core first (it owns the schema's users),
// then notification, and the gateway, which clients see, last.
var Workloads = []string{RoleCore, RoleNotification, RoleGateway}

// Managed dependencies.
const (
	DepPostgres = "postgres"
	DepRedis    = "redis"
	DepKafka    = "kafka"
)

// Label keys.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelVersion   = "app.kubernetes.io/version"

	// ManagedBy is the value of LabelManagedBy on every object the operator owns; the
	// operator's cache of Secrets and ConfigMaps is restricted to it.
	ManagedBy = "parley-operator"
)

// Annotation keys.
const (
	// AnnotationConfigChecksum on a pod template rolls the pods when settings change.
	AnnotationConfigChecksum = "chat.parley.dev/config-checksum"
	// AnnotationImage on a migration Job records the image it migrates to.
	AnnotationImage = "chat.parley.dev/image"
	// AnnotationSecretChecksum on a pod template digests the content of the Secrets the
	// operator generated that the pod references, so a regenerated signing key rolls the
	// pods that read it.
	AnnotationSecretChecksum = "chat.parley.dev/secret-checksum"
	// AnnotationPreviousKeyExpiresAt on the signing-key Secret is when the operator drops
	// its previous key (RFC 3339): one token lifetime after the rotation.
	AnnotationPreviousKeyExpiresAt = "chat.parley.dev/previous-signing-key-expires-at"
)

// Ports.
const (
	// HTTPPort serves the API or WebSocket, /healthz, /readyz and /metrics in every role.
	HTTPPort     = 8080
	HTTPPortName = "http"
)

// Paths inside Parley containers.
const (
	FilesDir = "/var/lib/parley/files"
	TmpDir   = "/tmp"
)

// Names of the objects a ChatCluster owns.
func WorkloadName(cc *chatv1alpha1.ChatCluster, role string) string  { return cc.Name + "-" + role }
func SettingsName(cc *chatv1alpha1.ChatCluster) string               { return cc.Name + "-settings" }
func SigningKeyName(cc *chatv1alpha1.ChatCluster) string             { return cc.Name + "-signing-key" }
func DependencyName(cc *chatv1alpha1.ChatCluster, dep string) string { return cc.Name + "-" + dep }
func PostgresCredentialsName(cc *chatv1alpha1.ChatCluster) string {
	return cc.Name + "-postgres-credentials"
}
func FilesClaimName(cc *chatv1alpha1.ChatCluster) string { return cc.Name + "-files" }
func IngressName(cc *chatv1alpha1.ChatCluster) string    { return cc.Name }

// MigrationJobName is unique per image, so a new version gets a new Job and a finished
// Job documents which image it migrated to.
func MigrationJobName(cc *chatv1alpha1.ChatCluster, image string) string {
	sum := sha256.Sum256([]byte(image))
	return cc.Name + "-migrate-" + hex.EncodeToString(sum[:])[:10]
}

// Keys of generated Secrets.
const (
	SigningKeyKey = "signingKey"
	// PreviousSigningKeyKey holds the key before the last rotation, still accepted for
	// verification until AnnotationPreviousKeyExpiresAt.
	PreviousSigningKeyKey = "previousSigningKey"
	PostgresPasswordKey   = "password"
	PostgresURLKey        = "url"
)

// WorkloadLabels select one Parley workload's pods.
func WorkloadLabels(cc *chatv1alpha1.ChatCluster, role string) map[string]string {
	return map[string]string{LabelName: "parley", LabelInstance: cc.Name, LabelComponent: role}
}

// DependencyLabels select one managed dependency's pod.
func DependencyLabels(cc *chatv1alpha1.ChatCluster, dep string) map[string]string {
	return map[string]string{LabelName: dep, LabelInstance: cc.Name, LabelComponent: dep}
}

// objectLabels are the labels of every owned object: its selector labels plus ownership.
func objectLabels(selector map[string]string) map[string]string {
	out := map[string]string{LabelManagedBy: ManagedBy, LabelPartOf: "parley"}
	for k, v := range selector {
		out[k] = v
	}
	return out
}

// clusterLabels label objects that belong to the whole ChatCluster rather than a workload.
func clusterLabels(cc *chatv1alpha1.ChatCluster) map[string]string {
	return objectLabels(map[string]string{LabelName: "parley", LabelInstance: cc.Name})
}

// VersionOf is the tag of an image reference, or "" for digests and untagged references.
func VersionOf(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return ""
	}
	return image[colon+1:]
}

// repository is an image reference without its tag or digest.
func repository(image string) string {
	if at := strings.Index(image, "@"); at >= 0 {
		image = image[:at]
	}
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon]
	}
	return image
}

// TargetImage is the image the spec asks for: spec.image, else the operator's image
// repository at spec.version, else the operator's own image.
func TargetImage(cc *chatv1alpha1.ChatCluster, defaultImage string) string {
	switch {
	case cc.Spec.Image != "":
		return cc.Spec.Image
	case cc.Spec.Version != "":
		return repository(defaultImage) + ":" + cc.Spec.Version
	default:
		return defaultImage
	}
}
