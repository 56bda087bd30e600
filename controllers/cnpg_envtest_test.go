package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/testenv/kube"
)

// cnpgCluster is a ChatCluster on CloudNativePG with backups.
func cnpgCluster(ns, name string) *chatv1alpha1.ChatCluster {
	cc := externalCluster(ns, name)
	cc.Spec.Postgres = chatv1alpha1.PostgresSpec{CNPG: &chatv1alpha1.CNPGPostgres{Instances: 3}}
	cc.Spec.Backup = &chatv1alpha1.BackupSpec{
		Schedule:    "0 0 2 * * *",
		ObjectStore: chatv1alpha1.ObjectStore{DestinationPath: "s3://backups/chat", EndpointURL: "https://minio.example.com", CredentialsSecret: "backup-s3"},
	}
	return cc
}

func cnpgObj(kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.CNPGGVK(kind))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// setCNPGStatus plays the CloudNativePG operator: it writes the status of obj.
func setCNPGStatus(t *testing.T, c client.Client, obj *unstructured.Unstructured, status map[string]any) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		obj.Object["status"] = status
		return c.Status().Update(context.Background(), obj)
	}); err != nil {
		t.Fatalf("status of %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// postgres.cnpg against CloudNativePG's real CRDs: the operator creates the Cluster
// (kept when the ChatCluster goes) and the ScheduledBackup, waits for the Cluster's Ready
// condition before migrating, points Parley at CloudNativePG's Secret, and reports the
// Cluster and the last backup.
func TestCNPGOnAPIServer(t *testing.T) {
	need(t)
	e := kube.New(t, kube.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases"), cnpgCRDDir}, Scheme: scheme})
	startOperator(t, e.Config, &fakeConnections{}, time.Second)
	c := e.Client
	ctx := context.Background()
	ns := namespace(t, c)

	// Everything the renderer can put in a Cluster or ScheduledBackup (recovery, backup,
	// resources, affinity) is valid for CloudNativePG's schema.
	data, err := os.ReadFile(filepath.Join("render", "testdata", "input", "cnpg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var full chatv1alpha1.ChatCluster
	if err := yaml.UnmarshalStrict(data, &full); err != nil {
		t.Fatal(err)
	}
	full.Namespace = ns
	for _, obj := range []client.Object{render.CNPGCluster(&full), render.CNPGScheduledBackup(&full)} {
		if err := c.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("CloudNativePG refuses the rendered %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, err)
		}
	}

	cc := cnpgCluster(ns, "db")
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}

	cluster := cnpgObj(render.CNPGClusterKind, ns, "db-postgres")
	eventually(t, "CloudNativePG Cluster", func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKeyFromObject(cluster), cluster) == nil, nil
	})
	if n, _, _ := unstructured.NestedInt64(cluster.Object, "spec", "instances"); n != 3 {
		t.Errorf("instances %d", n)
	}
	if p, _, _ := unstructured.NestedString(cluster.Object, "spec", "backup", "barmanObjectStore", "destinationPath"); p != "s3://backups/chat" {
		t.Errorf("backup destinationPath %q", p)
	}
	if len(cluster.GetOwnerReferences()) != 0 {
		t.Errorf("the Cluster is owned by %v: deleting the ChatCluster would delete the database", cluster.GetOwnerReferences())
	}
	sb := cnpgObj(render.CNPGScheduledBackupKind, ns, "db-postgres")
	eventually(t, "ScheduledBackup", func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKeyFromObject(sb), sb) == nil, nil
	})
	if s, _, _ := unstructured.NestedString(sb.Object, "spec", "schedule"); s != "0 0 2 * * *" {
		t.Errorf("schedule %q", s)
	}
	if s, _, _ := unstructured.NestedString(sb.Object, "spec", "cluster", "name"); s != "db-postgres" {
		t.Errorf("scheduled backup of cluster %q", s)
	}

	// Not Ready: no migration, and the condition says why.
	got := waitCondition(t, c, ns, "db", chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonDatabaseNotReady)
	if cond := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionProgressing); !strings.Contains(cond.Message, "db-postgres") {
		t.Errorf("Progressing %q does not name the Cluster", cond.Message)
	}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 0 {
		t.Fatalf("migration Jobs %d before the database is Ready (%v)", len(jobs.Items), err)
	}

	setCNPGStatus(t, c, cluster, map[string]any{
		"phase": "Cluster in healthy state", "readyInstances": int64(3), "instances": int64(3), "currentPrimary": "db-postgres-1",
		"conditions":               []any{map[string]any{"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
		"lastSuccessfulBackup":     "2026-11-30T02:00:10Z",
		"firstRecoverabilityPoint": "2026-11-29T02:00:05Z",
	})
	finishMigration(t, c, cc, render.TargetImage(cc, operatorImage), true)
	d := waitDeployment(t, c, cc, render.RoleCore, func(d *appsv1.Deployment) error {
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "PARLEY_POSTGRES_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == "db-postgres-app" && e.ValueFrom.SecretKeyRef.Key == "uri" {
				return nil
			}
		}
		return fmt.Errorf("no PARLEY_POSTGRES_URL from db-postgres-app/uri")
	})
	_ = d

	// A completed Backup newer than the Cluster's record is the last one.
	backup := cnpgObj(render.CNPGBackupKind, ns, "db-postgres-20261130030000")
	backup.Object["spec"] = map[string]any{"cluster": map[string]any{"name": "db-postgres"}, "method": "barmanObjectStore"}
	if err := c.Create(ctx, backup); err != nil {
		t.Fatal(err)
	}
	setCNPGStatus(t, c, backup, map[string]any{"phase": "completed", "startedAt": "2026-11-30T03:00:00Z", "stoppedAt": "2026-11-30T03:00:30Z"})
	// Backups are not watched; the Cluster's status changes with each backup.
	setCNPGStatus(t, c, cluster, map[string]any{
		"phase": "Cluster in healthy state", "readyInstances": int64(3), "instances": int64(3), "currentPrimary": "db-postgres-2",
		"conditions":               []any{map[string]any{"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
		"lastSuccessfulBackup":     "2026-11-30T02:00:10Z",
		"firstRecoverabilityPoint": "2026-11-29T02:00:05Z",
	})
	eventually(t, "status.backup and status.postgres", func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, "db")
		if err != nil {
			return false, err
		}
		pg, b := got.Status.Postgres, got.Status.Backup
		ok := pg != nil && pg.Ready == metav1.ConditionTrue && pg.ReadyInstances == 3 && pg.CurrentPrimary == "db-postgres-2" &&
			b != nil && b.LastSuccessfulBackupName == "db-postgres-20261130030000" && b.LastSuccessfulBackup != nil &&
			b.LastSuccessfulBackup.UTC().Format(time.RFC3339) == "2026-11-30T03:00:30Z" && b.FirstRecoverabilityPoint != nil
		return ok, fmt.Errorf("postgres %+v backup %+v", pg, b)
	})

	// The database failing is a dependency not ready.
	setCNPGStatus(t, c, cluster, map[string]any{
		"phase": "Failing over", "readyInstances": int64(2), "instances": int64(3),
		"conditions": []any{map[string]any{"type": "Ready", "status": "False", "reason": "ClusterIsNotReady", "message": "failing over", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
	})
	eventually(t, "Ready=False naming postgres", func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, "db")
		if err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionReady)
		ok := cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, "postgres") &&
			got.Status.Postgres != nil && got.Status.Postgres.Ready == metav1.ConditionFalse
		return ok, fmt.Errorf("Ready %+v, postgres %+v", cond, got.Status.Postgres)
	})

	// Backups off: the ScheduledBackup goes, the Cluster's backup section too.
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Backup = nil })
	eventually(t, "ScheduledBackup removed", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(sb), sb)
		return client.IgnoreNotFound(err) == nil && err != nil, err
	})
	eventually(t, "Cluster without backup", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cluster), cluster); err != nil {
			return false, err
		}
		// CloudNativePG's CRD defaults backup.target; the object store is what goes.
		_, has, _ := unstructured.NestedMap(cluster.Object, "spec", "backup", "barmanObjectStore")
		return !has, fmt.Errorf("spec.backup.barmanObjectStore still set")
	})

	// Deleting the ChatCluster leaves the database.
	if err := c.Delete(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ChatCluster gone", func(ctx context.Context) (bool, error) {
		_, err := getCluster(ctx, c, ns, "db")
		return client.IgnoreNotFound(err) == nil && err != nil, err
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(cluster), cluster); err != nil {
		t.Errorf("the CloudNativePG Cluster went with the ChatCluster: %v", err)
	}
}

// Without CloudNativePG installed, postgres.cnpg is a condition, not a crash: nothing
// is migrated or rolled, and the other ChatClusters carry on.
func TestCNPGMissingCRDIsACondition(t *testing.T) {
	c := need(t) // the shared control plane has no CloudNativePG CRDs
	ns := namespace(t, c)
	if err := c.Create(context.Background(), cnpgCluster(ns, "nocnpg")); err != nil {
		t.Fatal(err)
	}
	got := waitCondition(t, c, ns, "nocnpg", chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, chatv1alpha1.ReasonCRDMissing)
	if cond := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionDegraded); !strings.Contains(cond.Message, "postgresql.cnpg.io") {
		t.Errorf("Degraded %q does not name the missing API", cond.Message)
	}
	if cond := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionReady); cond == nil || cond.Reason != chatv1alpha1.ReasonCRDMissing {
		t.Errorf("Ready %+v, want False with CRDMissing", cond)
	}
	var jobs batchv1.JobList
	if err := c.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 0 {
		t.Errorf("%d migration Jobs without a database (%v)", len(jobs.Items), err)
	}
	// The operator still serves the others.
	installed(t, c, externalCluster(ns, "other"))
}
