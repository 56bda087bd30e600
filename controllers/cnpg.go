package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

// cnpgWatch starts the watch on CloudNativePG Clusters the first time a reconcile finds
// their CRD. The CRD may be installed after the operator started; a watch on a kind the
// API server does not serve would stop the manager.
type cnpgWatch struct {
	mu      sync.Mutex
	ctrl    controller.Controller
	cache   cache.Cache
	started bool
}

func (w *cnpgWatch) set(c controller.Controller, ca cache.Cache) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctrl, w.cache = c, ca
}

// ensure watches Clusters, mapped to the ChatCluster of their instance label: their
// status gates the migration and carries the last backup.
func (w *cnpgWatch) ensure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.ctrl == nil {
		return nil
	}
	toChat := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		name, ok := obj.GetLabels()[render.LabelInstance]
		if !ok || obj.GetLabels()[render.LabelManagedBy] != render.ManagedBy {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}}}
	})
	cluster := &unstructured.Unstructured{}
	cluster.SetGroupVersionKind(render.CNPGGVK(render.CNPGClusterKind))
	if err := w.ctrl.Watch(source.Kind[client.Object](w.cache, cluster, toChat)); err != nil {
		return fmt.Errorf("watch CloudNativePG clusters: %w", err)
	}
	w.started = true
	return nil
}

// cnpgMissing describes the missing CloudNativePG CRD when the spec needs it, and is
// empty otherwise.
func (r *ChatClusterReconciler) cnpgMissing(ctx context.Context, cc *chatv1alpha1.ChatCluster) (string, error) {
	if cc.Spec.Postgres.CNPG == nil {
		return "", nil
	}
	kinds := []string{render.CNPGClusterKind}
	if cc.Spec.Backup != nil {
		kinds = append(kinds, render.CNPGScheduledBackupKind)
	}
	for _, kind := range kinds {
		gvk := render.CNPGGVK(kind)
		if _, err := r.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			if meta.IsNoMatchError(err) {
				return fmt.Sprintf("postgres.cnpg needs CloudNativePG: the API server does not serve %s %s (install the CloudNativePG operator; the operator looks again every %s)", gvk.GroupVersion(), kind, secretRecheck), nil
			}
			return "", fmt.Errorf("look up %s: %w", gvk, err)
		}
	}
	if err := r.cnpg.ensure(); err != nil {
		return "", err
	}
	return "", nil
}

// withoutCNPG drops CloudNativePG's kinds from a plan while their CRD is missing.
func withoutCNPG(p render.Plan) render.Plan {
	keep := func(list []client.Object) []client.Object {
		var out []client.Object
		for _, obj := range list {
			if obj.GetObjectKind().GroupVersionKind().Group != render.CNPGGroup {
				out = append(out, obj)
			}
		}
		return out
	}
	return render.Plan{Apply: keep(p.Apply), Absent: keep(p.Absent)}
}

// getCNPGCluster reads the ChatCluster's CloudNativePG Cluster, nil when absent.
func (r *ChatClusterReconciler) getCNPGCluster(ctx context.Context, cc *chatv1alpha1.ChatCluster) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.CNPGGVK(render.CNPGClusterKind))
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.CNPGClusterName(cc)}, u)
	if err != nil {
		if client.IgnoreNotFound(err) == nil || meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get CloudNativePG cluster: %w", err)
	}
	return u, nil
}

// cnpgReady is the Cluster's Ready condition.
func cnpgReady(u *unstructured.Unstructured) metav1.ConditionStatus {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Ready" {
			if s, ok := m["status"].(string); ok {
				return metav1.ConditionStatus(s)
			}
		}
	}
	return metav1.ConditionUnknown
}

// cnpgNotReady names the CloudNativePG Cluster while it is not Ready: the migration
// (and so every rollout) waits for it.
func (r *ChatClusterReconciler) cnpgNotReady(ctx context.Context, cc *chatv1alpha1.ChatCluster) (string, error) {
	u, err := r.getCNPGCluster(ctx, cc)
	if err != nil {
		return "", err
	}
	if u == nil || cnpgReady(u) != metav1.ConditionTrue {
		return render.CNPGClusterName(cc), nil
	}
	return "", nil
}

// observeCNPG reports the CloudNativePG Cluster and the last backup, and counts a Cluster
// that is not Ready as a dependency not ready.
func (r *ChatClusterReconciler) observeCNPG(ctx context.Context, cc *chatv1alpha1.ChatCluster, facts *statusFacts) error {
	if cc.Spec.Postgres.CNPG == nil {
		cc.Status.Postgres, cc.Status.Backup = nil, nil
		return nil
	}
	u, err := r.getCNPGCluster(ctx, cc)
	if err != nil {
		return err
	}
	if u == nil {
		cc.Status.Postgres = &chatv1alpha1.PostgresStatus{Cluster: render.CNPGClusterName(cc), Ready: metav1.ConditionUnknown}
		facts.depsNotReady = append(facts.depsNotReady, render.DepPostgres)
		return nil
	}
	st := &chatv1alpha1.PostgresStatus{Cluster: u.GetName(), Ready: cnpgReady(u)}
	st.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	st.CurrentPrimary, _, _ = unstructured.NestedString(u.Object, "status", "currentPrimary")
	if n, ok, _ := unstructured.NestedInt64(u.Object, "status", "readyInstances"); ok {
		st.ReadyInstances = int32(n)
	}
	cc.Status.Postgres = st
	if st.Ready != metav1.ConditionTrue {
		facts.depsNotReady = append(facts.depsNotReady, render.DepPostgres)
	}
	if cc.Spec.Backup == nil {
		cc.Status.Backup = nil
		return nil
	}
	backup, err := r.lastBackups(ctx, cc)
	if err != nil {
		return err
	}
	// The Cluster's own record covers backups whose objects were deleted.
	if t := statusTime(u, "lastSuccessfulBackup"); t != nil && (backup.LastSuccessfulBackup == nil || t.After(backup.LastSuccessfulBackup.Time)) {
		backup.LastSuccessfulBackup, backup.LastSuccessfulBackupName = t, ""
	}
	backup.FirstRecoverabilityPoint = statusTime(u, "firstRecoverabilityPoint")
	if backup.LastFailedBackup != nil && backup.LastSuccessfulBackup != nil && !backup.LastFailedBackup.After(backup.LastSuccessfulBackup.Time) {
		backup.LastFailedBackup = nil
	}
	cc.Status.Backup = backup
	return nil
}

func statusTime(u *unstructured.Unstructured, field string) *metav1.Time {
	s, _, _ := unstructured.NestedString(u.Object, "status", field)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}

// lastBackups finds the newest completed and failed Backups of the Cluster. They are read
// uncached, when a reconcile runs: the Cluster's status changes with each backup.
func (r *ChatClusterReconciler) lastBackups(ctx context.Context, cc *chatv1alpha1.ChatCluster) (*chatv1alpha1.BackupStatus, error) {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(render.CNPGGVK(render.CNPGBackupKind + "List"))
	out := &chatv1alpha1.BackupStatus{}
	if err := reader.List(ctx, &list, client.InNamespace(cc.Namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return out, nil
		}
		return nil, fmt.Errorf("list CloudNativePG backups: %w", err)
	}
	for i := range list.Items {
		b := &list.Items[i]
		if name, _, _ := unstructured.NestedString(b.Object, "spec", "cluster", "name"); name != render.CNPGClusterName(cc) {
			continue
		}
		phase, _, _ := unstructured.NestedString(b.Object, "status", "phase")
		switch phase {
		case "completed":
			if t := statusTime(b, "stoppedAt"); t != nil && (out.LastSuccessfulBackup == nil || t.After(out.LastSuccessfulBackup.Time)) {
				out.LastSuccessfulBackup, out.LastSuccessfulBackupName = t, b.GetName()
			}
		case "failed":
			t := statusTime(b, "startedAt")
			if t == nil {
				t = &metav1.Time{Time: b.GetCreationTimestamp().Time}
			}
			if out.LastFailedBackup == nil || t.After(out.LastFailedBackup.Time) {
				out.LastFailedBackup = t
			}
		}
	}
	return out, nil
}
