package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// Settings is the env-shaped ConfigMap every Parley container reads with envFrom. It
// holds no credential: those come from Secrets through secretKeyRef.
func Settings(cc *chatv1alpha1.ChatCluster) *corev1.ConfigMap {
	s := cc.Spec
	data := map[string]string{
		"PARLEY_LISTEN":                 fmt.Sprintf(":%d", HTTPPort),
		"PARLEY_KAFKA_PARTITIONS":       strconv.Itoa(int(s.Kafka.Partitions)),
		"PARLEY_REGISTRATION":           s.Auth.Registration,
		"PARLEY_TOKEN_TTL":              s.Auth.TokenTTL,
		"PARLEY_MAX_MESSAGE_BYTES":      strconv.Itoa(int(s.Limits.MaxMessageBytes)),
		"PARLEY_MESSAGES_PER_SECOND":    strconv.Itoa(int(s.Limits.MessagesPerSecond)),
		"PARLEY_MAX_ROOM_MEMBERS":       strconv.Itoa(int(s.Limits.MaxRoomMembers)),
		"PARLEY_FILES_MAX_UPLOAD_BYTES": strconv.FormatInt(s.Files.MaxUploadBytes, 10),
	}
	if s.Redis.Managed != nil {
		data["PARLEY_REDIS_URL"] = fmt.Sprintf("redis://%s:%d/0", DependencyName(cc, DepRedis), redisPort)
	}
	switch {
	case s.Kafka.Managed != nil:
		data["PARLEY_KAFKA_BROKERS"] = fmt.Sprintf("%s:%d", DependencyName(cc, DepKafka), kafkaPort)
		data["PARLEY_KAFKA_TLS"] = "false"
	case s.Kafka.External != nil:
		data["PARLEY_KAFKA_BROKERS"] = strings.Join(s.Kafka.External.BootstrapServers, ",")
		data["PARLEY_KAFKA_TLS"] = strconv.FormatBool(s.Kafka.External.TLS)
		if sasl := s.Kafka.External.SASL; sasl != nil {
			data["PARLEY_KAFKA_SASL_MECHANISM"] = sasl.Mechanism
		}
	}
	if s3 := s.Files.S3; s3 != nil {
		data["PARLEY_FILES_BACKEND"] = "s3"
		data["PARLEY_FILES_S3_ENDPOINT"] = s3.Endpoint
		data["PARLEY_FILES_S3_BUCKET"] = s3.Bucket
	} else {
		data["PARLEY_FILES_BACKEND"] = "local"
		data["PARLEY_FILES_DIR"] = FilesDir
	}
	if wp := s.Notification.WebPush; wp != nil {
		data["PARLEY_VAPID_SUBJECT"] = wp.Subject
	}
	if ing := s.Ingress; ing != nil {
		data["PARLEY_ALLOWED_ORIGINS"] = Endpoint(cc)
		if len(ing.TrustedProxies) > 0 {
			data["PARLEY_TRUSTED_PROXIES"] = strings.Join(ing.TrustedProxies, ",")
		}
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: SettingsName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Data:       data,
	}
}

// Checksum digests the settings; on the pod templates it rolls the pods when a setting
// changes, since env from a ConfigMap is read only at container start.
func Checksum(cm *corev1.ConfigMap) string {
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, cm.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Endpoint is the URL clients use: the Ingress host, else the gateway Service.
func Endpoint(cc *chatv1alpha1.ChatCluster) string {
	if ing := cc.Spec.Ingress; ing != nil {
		scheme := "http"
		if ing.TLSSecretName != "" {
			scheme = "https"
		}
		return (&url.URL{Scheme: scheme, Host: ing.Host}).String()
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", WorkloadName(cc, RoleGateway), cc.Namespace, HTTPPort)
}

// SigningKeySecret holds the JWT signing key. The reconciler generates key once and only
// creates this Secret, never updates it, so the key is not rotated by accident.
func SigningKeySecret(cc *chatv1alpha1.ChatCluster, key []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: SigningKeyName(cc), Namespace: cc.Namespace, Labels: clusterLabels(cc)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{SigningKeyKey: key},
	}
}

// RotatedSigningKeySecret is the signing-key Secret made after the previous one was
// deleted: key signs, previous (the deleted Secret's key) still verifies until expires.
func RotatedSigningKeySecret(cc *chatv1alpha1.ChatCluster, key, previous []byte, expires time.Time) *corev1.Secret {
	s := SigningKeySecret(cc, key)
	s.Data[PreviousSigningKeyKey] = previous
	s.Annotations = map[string]string{AnnotationPreviousKeyExpiresAt: expires.UTC().Format(time.RFC3339)}
	return s
}

// SecretDigest digests a Secret's content; the digests of the Secrets a pod references
// make its AnnotationSecretChecksum.
func SecretDigest(s *corev1.Secret) string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%x\n", k, s.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// secretChecksum folds the digests of the Secrets the pod's containers reference (by
// environment variable or volume) among those in digests, by Secret name; "" when none.
func secretChecksum(pod corev1.PodSpec, digests map[string]string) string {
	names := map[string]bool{}
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				names[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				names[e.SecretRef.Name] = true
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			names[v.Secret.SecretName] = true
		}
	}
	var used []string
	for name := range names {
		if _, ok := digests[name]; ok {
			used = append(used, name)
		}
	}
	if len(used) == 0 {
		return ""
	}
	sort.Strings(used)
	h := sha256.New()
	for _, name := range used {
		fmt.Fprintf(h, "%s=%s\n", name, digests[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PostgresCredentials holds the managed PostgreSQL's password and the URL Parley uses.
// Generated once, like the signing key.
func PostgresCredentials(cc *chatv1alpha1.ChatCluster, password string) *corev1.Secret {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(postgresUser, password),
		Host:     fmt.Sprintf("%s:%d", DependencyName(cc, DepPostgres), postgresPort),
		Path:     "/" + postgresDatabase,
		RawQuery: "sslmode=disable",
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: PostgresCredentialsName(cc), Namespace: cc.Namespace, Labels: objectLabels(DependencyLabels(cc, DepPostgres))},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			PostgresPasswordKey: []byte(password),
			PostgresURLKey:      []byte(u.String()),
		},
	}
}
