package render

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// CloudNativePG's API. Its objects are rendered as unstructured: the operator needs a
// handful of fields, not the CloudNativePG module and its dependencies.
const (
	CNPGGroup                = "postgresql.cnpg.io"
	CNPGVersion              = "v1"
	CNPGClusterKind          = "Cluster"
	CNPGScheduledBackupKind  = "ScheduledBackup"
	CNPGBackupKind           = "Backup"
	CNPGAppSecretURIKey      = "uri"
	cnpgRecoverySource       = "origin"
	cnpgDefaultStorageSize   = "10Gi"
	cnpgDefaultRetention     = "30d"
	cnpgDefaultInstanceCount = 3
)

// CNPGGVK is the GroupVersionKind of one CloudNativePG kind.
func CNPGGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: CNPGGroup, Version: CNPGVersion, Kind: kind}
}

// CNPGClusterName is the CloudNativePG Cluster of a ChatCluster (and its ScheduledBackup).
func CNPGClusterName(cc *chatv1alpha1.ChatCluster) string { return cc.Name + "-postgres" }

// CNPGAppSecretName is the Secret CloudNativePG generates with the application user's
// credentials and connection URI.
func CNPGAppSecretName(cc *chatv1alpha1.ChatCluster) string { return CNPGClusterName(cc) + "-app" }

// CNPGReadWriteService is the Service of the primary instance.
func CNPGReadWriteService(cc *chatv1alpha1.ChatCluster) string { return CNPGClusterName(cc) + "-rw" }

func cnpgObject(kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CNPGGVK(kind))
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// CNPGCluster is the CloudNativePG Cluster of postgres.cnpg, or nil without it. Parley
// reaches it through the Service NAME-postgres-rw with the URI in NAME-postgres-app
// (CloudNativePG's defaults: database and owner app).
func CNPGCluster(cc *chatv1alpha1.ChatCluster) *unstructured.Unstructured {
	pg := cc.Spec.Postgres.CNPG
	if pg == nil {
		return nil
	}
	u := cnpgObject(CNPGClusterKind, cc.Namespace, CNPGClusterName(cc))
	u.SetLabels(objectLabels(DependencyLabels(cc, DepPostgres)))
	instances := pg.Instances
	if instances == 0 {
		instances = cnpgDefaultInstanceCount
	}
	size := cnpgDefaultStorageSize
	if !pg.Storage.Size.IsZero() {
		size = pg.Storage.Size.String()
	}
	storage := map[string]any{"size": size}
	if pg.Storage.StorageClassName != nil {
		storage["storageClass"] = *pg.Storage.StorageClassName
	}
	spec := map[string]any{
		"instances": int64(instances),
		"storage":   storage,
	}
	if pg.ImageName != "" {
		spec["imageName"] = pg.ImageName
	}
	if len(pg.Resources.Requests) > 0 || len(pg.Resources.Limits) > 0 {
		spec["resources"] = toMap(pg.Resources.DeepCopy())
	}
	if pt := cc.Spec.PodTemplate; len(pt.NodeSelector) > 0 || len(pt.Tolerations) > 0 {
		affinity := map[string]any{}
		if len(pt.NodeSelector) > 0 {
			sel := map[string]any{}
			for k, v := range pt.NodeSelector {
				sel[k] = v
			}
			affinity["nodeSelector"] = sel
		}
		if len(pt.Tolerations) > 0 {
			var list []any
			for i := range pt.Tolerations {
				list = append(list, toMap(&pt.Tolerations[i]))
			}
			affinity["tolerations"] = list
		}
		spec["affinity"] = affinity
	}
	if len(cc.Spec.ImagePullSecrets) > 0 {
		var list []any
		for _, s := range cc.Spec.ImagePullSecrets {
			list = append(list, map[string]any{"name": s.Name})
		}
		spec["imagePullSecrets"] = list
	}
	if b := cc.Spec.Backup; b != nil {
		retention := b.RetentionPolicy
		if retention == "" {
			retention = cnpgDefaultRetention
		}
		spec["backup"] = map[string]any{
			"retentionPolicy":   retention,
			"barmanObjectStore": barmanObjectStore(b.ObjectStore, ""),
		}
	}
	if r := pg.Recovery; r != nil {
		recovery := map[string]any{"source": cnpgRecoverySource}
		if r.TargetTime != "" {
			recovery["recoveryTarget"] = map[string]any{"targetTime": r.TargetTime}
		}
		spec["bootstrap"] = map[string]any{"recovery": recovery}
		spec["externalClusters"] = []any{map[string]any{
			"name":              cnpgRecoverySource,
			"barmanObjectStore": barmanObjectStore(r.ObjectStore, r.ServerName),
		}}
	}
	u.Object["spec"] = spec
	return u
}

// barmanObjectStore is CloudNativePG's barmanObjectStore section for an object store;
// serverName names the backed-up Cluster when reading another cluster's backups.
func barmanObjectStore(o chatv1alpha1.ObjectStore, serverName string) map[string]any {
	out := map[string]any{
		"destinationPath": o.DestinationPath,
		"s3Credentials": map[string]any{
			"accessKeyId":     map[string]any{"name": o.CredentialsSecret, "key": "accessKey"},
			"secretAccessKey": map[string]any{"name": o.CredentialsSecret, "key": "secretKey"},
		},
	}
	if serverName == "" {
		// Archiving this cluster's WAL: compressed, CloudNativePG's recommendation.
		out["wal"] = map[string]any{"compression": "gzip"}
	}
	if o.EndpointURL != "" {
		out["endpointURL"] = o.EndpointURL
	}
	if serverName != "" {
		out["serverName"] = serverName
	}
	return out
}

// CNPGScheduledBackup is the ScheduledBackup of spec.backup, or nil without it. Its first
// backup runs at once (immediate), so a new cluster is recoverable without waiting for
// the schedule; the Backups it creates are owned by it.
func CNPGScheduledBackup(cc *chatv1alpha1.ChatCluster) *unstructured.Unstructured {
	b := cc.Spec.Backup
	if b == nil || cc.Spec.Postgres.CNPG == nil {
		return nil
	}
	u := cnpgObject(CNPGScheduledBackupKind, cc.Namespace, CNPGClusterName(cc))
	u.SetLabels(objectLabels(DependencyLabels(cc, DepPostgres)))
	u.Object["spec"] = map[string]any{
		"schedule":             b.Schedule,
		"cluster":              map[string]any{"name": CNPGClusterName(cc)},
		"method":               "barmanObjectStore",
		"immediate":            true,
		"backupOwnerReference": "self",
	}
	return u
}

func toMap(obj any) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(err) // typed API structs always convert
	}
	return m
}

// Outlives reports whether obj is applied without an owner reference, so that deleting
// the ChatCluster leaves it: the CloudNativePG Cluster holds the database, like the
// managed PostgreSQL's claim.
func Outlives(obj client.Object) bool {
	gvk := obj.GetObjectKind().GroupVersionKind()
	return gvk.Group == CNPGGroup && gvk.Kind == CNPGClusterKind
}
