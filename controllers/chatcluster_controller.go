package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

// Least privilege: the operator creates and patches what it owns, deletes only the kinds
// it may need to remove (an HPA, Ingress, managed dependency or policy dropped from the
// spec, finished migration Jobs of other versions), and never deletes Secrets, ConfigMaps
// or claims. The only Secret it patches is its own signing key, to drop the previous key
// one token lifetime after a rotation.
//
// +kubebuilder:rbac:groups=chat.parley.dev,resources=chatclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=chat.parley.dev,resources=chatclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=chat.parley.dev,resources=chatclusters/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;persistentvolumeclaims,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
//
// The connection autoscaler reads the gateway pods and sets their deletion cost:
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
//
// postgres.cnpg and backup: CloudNativePG Clusters are created and updated but never
// deleted (deleting a database is a human's call); ScheduledBackups come and go with
// spec.backup; Backups are only read, for the status.
// +kubebuilder:rbac:groups=postgresql.cnpg.io,resources=clusters,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=postgresql.cnpg.io,resources=scheduledbackups,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=postgresql.cnpg.io,resources=backups,verbs=get;list

// ChatClusterReconciler drives ChatClusters.
type ChatClusterReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// DefaultImage is the operator's own image: workloads run it unless the spec names a
	// version or an image.
	DefaultImage string
	// APIReader reads the Secrets the spec names, uncached: the cache holds only the
	// Secrets the operator made. The reconciler reads no other Secret. Client when nil.
	APIReader client.Reader
	// Random feeds generated secrets; crypto/rand when nil.
	Random io.Reader
	// MaxConcurrentReconciles is how many ChatClusters are reconciled at once (1 when
	// zero). One ChatCluster is never reconciled by two workers at a time.
	MaxConcurrentReconciles int
	// Connections reads the gateway pods' open connections for the connection autoscaler;
	// a MetricsScraper when nil.
	Connections ConnectionSource
	// ConnectionSampleInterval is how often the connection autoscaler samples;
	// DefaultConnectionSampleInterval when zero.
	ConnectionSampleInterval time.Duration

	// cnpg watches CloudNativePG Clusters once their CRD is found.
	cnpg cnpgWatch
	// lastSample holds when the connection autoscaler last sampled each ChatCluster.
	lastSample sync.Map // types.NamespacedName -> time.Time

	// retired holds the key of each signing-key Secret seen deleted, until the reconcile
	// that generates its successor keeps it as the previous key (ensureGeneratedSecrets).
	retired sync.Map // types.NamespacedName -> retiredKey

	// secretsFound holds when every Secret a ChatCluster's spec names was last found with
	// its keys (missingSecrets), so the burst of reconciles its children's events cause
	// does not read them all again each time.
	secretsFound sync.Map // types.NamespacedName -> secretsCheck

	// statusWrites holds, per ChatCluster, the resourceVersion its last status write
	// replaced: a cache still showing that version has not seen the write, and a reconcile
	// acting on it would redo decisions the write recorded (the connection autoscaler
	// applied a replica count it had already replaced, and so overwrote a kubectl scale
	// without noticing it).
	statusWrites sync.Map // types.NamespacedName -> statusWrite
}

// statusWrite is the last status write of one ChatCluster.
type statusWrite struct {
	replaced string // the resourceVersion the write replaced
	at       time.Time
}

// staleCacheWait bounds how long a reconcile waits for the cache to show the operator's
// own last status write (a watch event normally brings it within milliseconds), looking
// again every staleCacheRetry.
const (
	staleCacheWait  = 2 * time.Second
	staleCacheRetry = 50 * time.Millisecond
)

// secretsCheck is a ChatCluster's last complete check of its Secrets.
type secretsCheck struct {
	uid        types.UID
	generation int64
	at         time.Time
}

// retiredKey is the content of a deleted signing-key Secret.
type retiredKey struct {
	owner types.UID
	key   []byte
}

// Event reasons.
const (
	EventMigrationStarted   = "MigrationStarted"
	EventMigrationSucceeded = "MigrationSucceeded"
	EventMigrationFailed    = "MigrationFailed"
	EventWorkloadRolled     = "WorkloadUpdated"
	EventSecretGenerated    = "SecretGenerated"
	EventChildRemoved       = "ChildRemoved"
	EventReconcileError     = "ReconcileError"
)

// SetupWithManager registers the controller and its watches: every owned kind, so a
// deleted or edited child triggers a reconcile that restores it.
func (r *ChatClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	secrets := &secretHandler{
		EventHandler: handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &chatv1alpha1.ChatCluster{}, handler.OnlyControllerOwner()),
		r:            r,
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		For(&chatv1alpha1.ChatCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Watches(&corev1.Secret{}, secrets).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&batchv1.Job{}).
		// The reconcile never reads a PDB's or an autoscaler's status, which the disruption
		// controller rewrites on every pod change and the HPA controller every sync: only
		// what the operator owns (spec, labels, annotations) or a deletion needs it.
		Owns(&policyv1.PodDisruptionBudget{}, builder.WithPredicates(specOrMetadataChanged)).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}, builder.WithPredicates(specOrMetadataChanged)).
		Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Named("chatcluster").
		Build(r)
	if err != nil {
		return err
	}
	// CloudNativePG's kinds are watched only once their CRD is found (ensureCNPGWatch):
	// a watch on a missing kind would keep the manager from starting.
	r.cnpg.set(c, mgr.GetCache())
	return (&firstStatusReconciler{client: r.Client}).setupWithManager(mgr)
}

// specOrMetadataChanged passes creations, deletions and updates that change the spec
// (the generation), the labels or the annotations, and drops status-only updates.
var specOrMetadataChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})

// secretHandler enqueues a Secret's controlling ChatCluster, like Owns, and first
// remembers the key of a deleted signing-key Secret, so that the reconcile which
// regenerates it can keep the old key as the previous one.
type secretHandler struct {
	handler.EventHandler
	r *ChatClusterReconciler
}

func (h *secretHandler) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if s, ok := e.Object.(*corev1.Secret); ok {
		if ref := metav1.GetControllerOf(s); ref != nil && ref.Kind == "ChatCluster" && strings.HasSuffix(s.Name, "-signing-key") && len(s.Data[render.SigningKeyKey]) > 0 {
			h.r.retired.Store(client.ObjectKeyFromObject(s), retiredKey{owner: ref.UID, key: s.Data[render.SigningKeyKey]})
		}
	}
	h.EventHandler.Delete(ctx, e, q)
}

// errCacheBehind: a generated Secret exists but the cache has not seen it yet, so its
// content (and the pods' checksum of it) is unknown; the reconcile is retried shortly.
var errCacheBehind = errors.New("cache behind")

// Reconcile brings one ChatCluster's children to its spec and reports on them.
func (r *ChatClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var cc chatv1alpha1.ChatCluster
	if err := r.Client.Get(ctx, req.NamespacedName, &cc); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
			r.lastSample.Delete(req.NamespacedName)
			r.retired.Delete(client.ObjectKey{Namespace: req.Namespace, Name: req.Name + "-signing-key"})
			r.secretsFound.Delete(req.NamespacedName)
			r.statusWrites.Delete(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get chatcluster: %w", err)
	}
	if w, ok := r.statusWrites.Load(req.NamespacedName); ok {
		if w := w.(statusWrite); cc.ResourceVersion == w.replaced && time.Since(w.at) < staleCacheWait {
			return ctrl.Result{RequeueAfter: staleCacheRetry}, nil
		}
	}
	outcome := "success"
	defer func() {
		if err != nil && ctx.Err() != nil {
			// Cut short by the operator shutting down (or losing the lease): not a failure,
			// and whichever operator leads next reconciles again.
			result, err, outcome = ctrl.Result{}, nil, "canceled"
		}
		if err != nil {
			outcome = "error"
		}
		reconcileTotal.WithLabelValues(req.Namespace, req.Name, outcome).Inc()
	}()

	before := cc.Status.DeepCopy()
	if cc.Spec.Paused {
		outcome = "paused"
		// Nothing is written but the status, which keeps following the children (reads
		// only): Ready and the counts stay current. Degraded keeps what the last
		// reconcile found, since migrations and Secrets are not checked while paused.
		degraded := meta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionDegraded)
		if degraded != nil {
			degraded = degraded.DeepCopy()
		}
		if err := r.observe(ctx, &cc, migration{target: render.TargetImage(&cc, r.DefaultImage), running: cc.Status.Image}); err != nil {
			return ctrl.Result{}, err
		}
		if degraded != nil {
			meta.SetStatusCondition(&cc.Status.Conditions, *degraded)
		}
		meta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
			Type: chatv1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: chatv1alpha1.ReasonPaused,
			Message: "spec.paused is true: the operator changes nothing", ObservedGeneration: cc.Generation,
		})
		cc.Status.ObservedGeneration = cc.Generation
		return quietConflict(r.writeStatus(ctx, &cc, before))
	}

	obs, requeue, err := r.reconcileChildren(ctx, &cc)
	if errors.Is(err, errCacheBehind) {
		return ctrl.Result{RequeueAfter: statusConflictRetry}, nil
	}
	if obsErr := r.observe(ctx, &cc, obs); obsErr != nil {
		err = errors.Join(err, obsErr)
	}
	if ctx.Err() != nil {
		return ctrl.Result{}, nil // shutting down: the errors say nothing about the cluster
	}
	if err != nil {
		msg := userMessage(err)
		meta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
			Type: chatv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: chatv1alpha1.ReasonReconcileError,
			Message: msg, ObservedGeneration: cc.Generation,
		})
		r.event(&cc, nil, corev1.EventTypeWarning, EventReconcileError, "Reconcile", "%s", msg)
		return ctrl.Result{}, errors.Join(err, r.writeStatus(ctx, &cc, before))
	}
	res, err := quietConflict(r.writeStatus(ctx, &cc, before))
	if err == nil && res.RequeueAfter == 0 && requeue > 0 {
		res.RequeueAfter = requeue
	}
	return res, err
}

// migration is what the reconcile learned about the upgrade to the target image.
type migration struct {
	target  string
	running string // image the workloads run after this reconcile
	pending bool
	failed  *batchv1.JobCondition
	// secretsMissing describes each missing Secret or key the pods need; while there is
	// one, neither the migration Job nor the Deployments are created or changed.
	secretsMissing []string
	// waitingFor names the managed database the migration Job waits for, or is empty;
	// waitingCNPG tells it is a CloudNativePG Cluster rather than a StatefulSet.
	waitingFor  string
	waitingCNPG bool
	// crdMissing describes another operator's CRD the spec needs and the cluster lacks;
	// like a missing Secret it holds the migration and the Deployments back.
	crdMissing string
}

// secretRecheck is how often a ChatCluster waiting for a Secret looks again: the Secrets
// users create are not watched (the cache holds only the operator's own).
const secretRecheck = 10 * time.Second

// reconcileChildren applies the plan. It returns what it learned about the migration and
// when to reconcile again at the latest (a previous signing key to drop), or 0.
func (r *ChatClusterReconciler) reconcileChildren(ctx context.Context, cc *chatv1alpha1.ChatCluster) (migration, time.Duration, error) {
	a := applier{client: r.Client, scheme: r.Scheme}
	digests, requeue, err := r.ensureGeneratedSecrets(ctx, cc)
	if err != nil {
		return migration{}, 0, err
	}
	missing, err := r.missingSecrets(ctx, cc)
	if err != nil {
		return migration{}, 0, err
	}
	crdMissing, err := r.cnpgMissing(ctx, cc)
	if err != nil {
		return migration{}, 0, err
	}
	if len(missing) > 0 || crdMissing != "" {
		// Pods that cannot start are not created: apply everything but the migration Job
		// and the Deployments (and their autoscalers), which keep what they run.
		held := migration{target: render.TargetImage(cc, r.DefaultImage), running: cc.Status.Image, secretsMissing: missing, crdMissing: crdMissing}
		_, err := r.applyPlan(ctx, cc, a, migration{crdMissing: crdMissing}, digests)
		if requeue == 0 || requeue > secretRecheck {
			requeue = secretRecheck
		}
		return held, requeue, err
	}
	mig, err := r.migrate(ctx, cc)
	if err != nil {
		return mig, requeue, err
	}
	if mig.running != "" {
		next, err := r.scaleOnConnections(ctx, cc)
		if err != nil {
			return mig, requeue, err
		}
		requeue = sooner(requeue, next)
	}
	mig, err = r.applyPlan(ctx, cc, a, mig, digests)
	return mig, requeue, err
}

// sooner is the earlier of two requeue delays, 0 meaning none.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

func (r *ChatClusterReconciler) applyPlan(ctx context.Context, cc *chatv1alpha1.ChatCluster, a applier, mig migration, digests map[string]string) (migration, error) {
	plan := render.Desired(cc, mig.running, digests)
	if mig.crdMissing != "" {
		plan = withoutCNPG(plan)
	}
	// An upgrade rolls the workloads one at a time in plan order (core, notification,
	// gateway): a workload still on the old image stays there until the one before it
	// has finished rolling out.
	blocked := false
	var errs []error
	for _, obj := range plan.Apply {
		d, isDeployment := obj.(*appsv1.Deployment)
		var live *appsv1.Deployment
		if isDeployment {
			var err error
			if live, err = r.liveDeployment(ctx, d); err != nil {
				return mig, err
			}
			if blocked && live != nil && containerImage(live) != mig.running {
				holdImage(d, containerImage(live))
			}
			if live == nil && d.Spec.Replicas == nil {
				// An autoscaled Deployment is created at its autoscaler's minimum rather than
				// the API server's default of one pod; the next apply hands the count off
				// (handOffReplicas) and the autoscaler owns it from then on.
				if a := render.WorkloadSpec(cc, d.Labels[render.LabelComponent]).Autoscaling; a != nil {
					d.Spec.Replicas = ptr.To(max(a.MinReplicas, 1))
				}
			}
		}
		leftToAutoscaler := isDeployment && d.Spec.Replicas == nil
		wrote, err := a.apply(ctx, cc, obj)
		if err == nil && wrote && leftToAutoscaler && live != nil && d.UID != "" && d.UID != live.UID {
			// The cache still showed a Deployment that had been deleted, so the apply
			// created it at the API server's default of one pod: set the autoscaler's
			// minimum, as for a Deployment known to be missing.
			if as := render.WorkloadSpec(cc, d.Labels[render.LabelComponent]).Autoscaling; as != nil {
				d.Spec.Replicas = ptr.To(max(as.MinReplicas, 1))
				_, err = a.apply(ctx, cc, obj)
			}
		}
		if err != nil {
			// One rejected object must not freeze the others; the error still surfaces.
			errs = append(errs, err)
			blocked = blocked || isDeployment
			continue
		}
		if !isDeployment {
			continue
		}
		upgrading := live != nil && containerImage(live) != containerImage(d)
		if wrote && upgrading {
			r.event(cc, d, corev1.EventTypeNormal, EventWorkloadRolled, "Upgrade", "rolling Deployment %s to %s", d.Name, containerImage(d))
		}
		switch {
		case containerImage(d) != mig.running:
			blocked = true // held back itself
		case upgrading && wrote:
			blocked = true // just started; the cache cannot tell yet whether it finished
		case live != nil && !rolledOut(live):
			blocked = true
		}
	}
	for _, obj := range plan.Absent {
		removed, err := a.deleteIfOwned(ctx, cc, obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", obj.GetName(), err))
			continue
		}
		if removed {
			kind := fmt.Sprintf("%T", obj)
			if gvk, err := apiutil.GVKForObject(obj, r.Scheme); err == nil {
				kind = gvk.Kind
			}
			r.event(cc, obj, corev1.EventTypeNormal, EventChildRemoved, "Delete", "removed %s %s: no longer in the spec", kind, obj.GetName())
		}
	}
	return mig, errors.Join(errs...)
}

func (r *ChatClusterReconciler) liveDeployment(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
	var live appsv1.Deployment
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(d), &live)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %s: %w", d.Name, err)
	}
	return &live, nil
}

func containerImage(d *appsv1.Deployment) string {
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return ""
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// holdImage keeps a rendered Deployment on the image it runs while earlier workloads
// finish their upgrade; every other change still applies.
func holdImage(d *appsv1.Deployment, image string) {
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Spec.Template.Labels[render.LabelVersion] = render.LabelValue(render.VersionOf(image))
}

// rolledOut reports whether every pod of the Deployment runs its current template and is
// available.
func rolledOut(d *appsv1.Deployment) bool {
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas >= desired &&
		d.Status.AvailableReplicas >= desired &&
		d.Status.Replicas == d.Status.UpdatedReplicas
}

// migrate decides which image the workloads run. A new target image runs `parley
// migrate` as a Job first; the workloads move only once it succeeded, and a failed Job
// leaves them on the image they ran.
func (r *ChatClusterReconciler) migrate(ctx context.Context, cc *chatv1alpha1.ChatCluster) (migration, error) {
	m := migration{target: render.TargetImage(cc, r.DefaultImage), running: cc.Status.Image}
	if m.running == m.target {
		return m, r.pruneMigrationJobs(ctx, cc, m.target)
	}
	want := render.MigrationJob(cc, m.target)
	var job batchv1.Job
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &job)
	switch {
	case apierrors.IsNotFound(err):
		// `parley migrate` needs the database: with a managed one, the Job waits for its pod
		// to be ready (the StatefulSet's status change triggers the next reconcile).
		if waiting, err := r.databaseNotReady(ctx, cc); err != nil || waiting != "" {
			m.pending, m.waitingFor, m.waitingCNPG = true, waiting, cc.Spec.Postgres.CNPG != nil
			return m, err
		}
		// Created once and never patched: a Job's pod template is immutable, and the Job
		// for this image is the record of its migration.
		if err := controllerutil.SetControllerReference(cc, want, r.Scheme); err != nil {
			return m, err
		}
		if err := r.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return m, fmt.Errorf("create migration job: %w", err)
		}
		r.event(cc, want, corev1.EventTypeNormal, EventMigrationStarted, "Migrate", "running parley migrate from %s before rolling the workloads", m.target)
		m.pending = true
		return m, nil
	case err != nil:
		return m, fmt.Errorf("get migration job: %w", err)
	}
	if !metav1IsControlledBy(&job, cc) {
		// Same name, other owner (a deleted ChatCluster's Job not yet collected): its
		// outcome says nothing about this cluster's schema.
		return m, fmt.Errorf("migration job %s exists but is not this ChatCluster's; waiting for it to be removed", job.Name)
	}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			r.event(cc, &job, corev1.EventTypeNormal, EventMigrationSucceeded, "Migrate", "migration to %s succeeded; rolling core, notification, then gateway", m.target)
			m.running = m.target
			cc.Status.Image = m.target
			cc.Status.Version = render.VersionOf(m.target)
			return m, nil
		case batchv1.JobFailed:
			c := c
			m.failed = &c
			if !meta.IsStatusConditionTrue(cc.Status.Conditions, chatv1alpha1.ConditionDegraded) {
				r.event(cc, &job, corev1.EventTypeWarning, EventMigrationFailed, "Migrate", "migration to %s failed (%s: %s); keeping %s", m.target, c.Reason, c.Message, displayImage(m.running))
			}
			return m, nil
		}
	}
	m.pending = true
	return m, nil
}

// databaseNotReady names the managed PostgreSQL StatefulSet while it has no ready pod,
// and is empty when the database is external or ready.
func (r *ChatClusterReconciler) databaseNotReady(ctx context.Context, cc *chatv1alpha1.ChatCluster) (string, error) {
	if cc.Spec.Postgres.CNPG != nil {
		return r.cnpgNotReady(ctx, cc)
	}
	if cc.Spec.Postgres.Managed == nil {
		return "", nil
	}
	name := render.DependencyName(cc, render.DepPostgres)
	var sts appsv1.StatefulSet
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: name}, &sts)
	if client.IgnoreNotFound(err) != nil {
		return "", fmt.Errorf("get statefulset %s: %w", name, err)
	}
	if err != nil || sts.Status.ReadyReplicas < 1 {
		return name, nil
	}
	return "", nil
}

// pruneMigrationJobs deletes the finished migration Jobs of other images once the
// workloads run target, so Jobs do not pile up one per version, and a failed attempt at
// a version can be retried by asking for that version again.
func (r *ChatClusterReconciler) pruneMigrationJobs(ctx context.Context, cc *chatv1alpha1.ChatCluster, target string) error {
	var jobs batchv1.JobList
	if err := r.Client.List(ctx, &jobs, client.InNamespace(cc.Namespace), client.MatchingLabels(render.WorkloadLabels(cc, render.RoleMigrate))); err != nil {
		return fmt.Errorf("list migration jobs: %w", err)
	}
	for i := range jobs.Items {
		job := &jobs.Items[i]
		// Unfinished ones too: a Job still migrating toward an image the spec no longer
		// asks for (the version was reverted) must not go on changing the schema.
		if job.Annotations[render.AnnotationImage] == target || !metav1IsControlledBy(job, cc) {
			continue
		}
		if err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete migration job %s: %w", job.Name, err)
		}
	}
	return nil
}

func displayImage(image string) string {
	if image == "" {
		return "no workloads"
	}
	return image
}

// ensureGeneratedSecrets creates the signing key (and the managed PostgreSQL's password)
// once and returns the digest of each generated Secret's content by name, for the pod
// templates. An existing Secret is never regenerated, so a key is never rotated by
// accident; the signing key's previous key is dropped once expired, and requeue says
// when that is due (0: nothing due).
func (r *ChatClusterReconciler) ensureGeneratedSecrets(ctx context.Context, cc *chatv1alpha1.ChatCluster) (digests map[string]string, requeue time.Duration, err error) {
	digests = map[string]string{}
	name := render.SigningKeyName(cc)
	retiredAt := client.ObjectKey{Namespace: cc.Namespace, Name: name}
	var used any
	signing, err := r.ensureSecret(ctx, cc, name, true, func(random []byte) *corev1.Secret {
		// Text, not raw bytes: the key reaches the workloads as an environment variable,
		// which cannot hold a NUL byte.
		key := []byte(base64.RawURLEncoding.EncodeToString(random))
		old, ok := r.retired.Load(retiredAt)
		if !ok || old.(retiredKey).owner != cc.UID {
			return render.SigningKeySecret(cc, key)
		}
		// A rotation: the deleted key still verifies the tokens it signed, which all
		// expire within one token lifetime, so nobody is logged out.
		used = old
		return render.RotatedSigningKeySecret(cc, key, old.(retiredKey).key, time.Now().Add(tokenTTL(cc)))
	})
	if err != nil {
		return nil, 0, err
	}
	if used != nil {
		r.retired.CompareAndDelete(retiredAt, used)
	}
	if signing, requeue, err = r.dropExpiredPreviousKey(ctx, cc, signing); err != nil {
		return nil, 0, err
	}
	digests[name] = render.SecretDigest(signing)
	if cc.Spec.Postgres.Managed == nil {
		return digests, requeue, nil
	}
	// Not owned: like the database's claim it outlives the ChatCluster, because a data
	// directory keeps the password it was initialised with; a recreated cluster must
	// find the same one.
	creds, err := r.ensureSecret(ctx, cc, render.PostgresCredentialsName(cc), false, func(random []byte) *corev1.Secret {
		return render.PostgresCredentials(cc, hex.EncodeToString(random[:24]))
	})
	if err != nil {
		return nil, 0, err
	}
	digests[creds.Name] = render.SecretDigest(creds)
	return digests, requeue, nil
}

// missingSecrets reads the Secrets the spec names, and only those, and describes each
// one or key that is missing, with the roles whose pods need it. They are not cached
// (nor watched), so each read goes to the API server; once all were found, reconciles of
// the same generation trust that for secretRecheck instead of reading them again: a
// ChatCluster coming up is reconciled on every status change of its children, dozens of
// times in seconds. A missing one is read again on every reconcile.
func (r *ChatClusterReconciler) missingSecrets(ctx context.Context, cc *chatv1alpha1.ChatCluster) ([]string, error) {
	key := client.ObjectKeyFromObject(cc)
	if v, ok := r.secretsFound.Load(key); ok {
		if last := v.(secretsCheck); last.uid == cc.UID && last.generation == cc.Generation && time.Since(last.at) < secretRecheck {
			return nil, nil
		}
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	checked := time.Now()
	var out []string
	secrets := map[string]*corev1.Secret{}
	for _, use := range render.ReferencedSecrets(cc) {
		s, seen := secrets[use.Secret]
		if !seen {
			var got corev1.Secret
			err := reader.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: use.Secret}, &got)
			switch {
			case err == nil:
				s = &got
			case !apierrors.IsNotFound(err):
				return nil, fmt.Errorf("get secret %s: %w", use.Secret, err)
			}
			secrets[use.Secret] = s
		}
		needed := " (needed by " + strings.Join(use.Roles, ", ") + ")"
		switch {
		case s == nil && !seen:
			out = append(out, fmt.Sprintf("secret %s/%s not found%s", cc.Namespace, use.Secret, needed))
		case s == nil:
			// reported once, with its first key's roles
		case s.Data[use.Key] == nil:
			out = append(out, fmt.Sprintf("secret %s/%s has no key %s%s", cc.Namespace, use.Secret, use.Key, needed))
		}
	}
	if len(out) == 0 {
		r.secretsFound.Store(key, secretsCheck{uid: cc.UID, generation: cc.Generation, at: checked})
	} else {
		r.secretsFound.Delete(key)
	}
	return out, nil
}

// tokenTTL is the access tokens' lifetime, how long a previous signing key is kept.
func tokenTTL(cc *chatv1alpha1.ChatCluster) time.Duration {
	if d, err := time.ParseDuration(cc.Spec.Auth.TokenTTL); err == nil && d > 0 {
		return d
	}
	return 24 * time.Hour // the API's default
}

// dropExpiredPreviousKey removes the signing-key Secret's previous key once its expiry
// passed (the new content rolls the pods that read it), and otherwise says when it is due.
func (r *ChatClusterReconciler) dropExpiredPreviousKey(ctx context.Context, cc *chatv1alpha1.ChatCluster, s *corev1.Secret) (*corev1.Secret, time.Duration, error) {
	if _, ok := s.Data[render.PreviousSigningKeyKey]; !ok {
		return s, 0, nil
	}
	// A missing or unreadable expiry counts as expired: a key must not linger unbounded.
	expires, err := time.Parse(time.RFC3339, s.Annotations[render.AnnotationPreviousKeyExpiresAt])
	if err == nil {
		if left := time.Until(expires); left > 0 {
			return s, left + time.Second, nil
		}
	}
	dropped := s.DeepCopy()
	delete(dropped.Data, render.PreviousSigningKeyKey)
	delete(dropped.Annotations, render.AnnotationPreviousKeyExpiresAt)
	if err := r.Client.Patch(ctx, dropped, client.MergeFromWithOptions(s, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil, 0, errCacheBehind
		}
		return nil, 0, fmt.Errorf("drop the previous key of secret %s: %w", s.Name, err)
	}
	r.event(cc, dropped, corev1.EventTypeNormal, EventSecretGenerated, "Rotate", "dropped the previous signing key of Secret %s: its tokens have expired", s.Name)
	return dropped, 0, nil
}

// ensureSecret returns the Secret name, creating it from build when it does not exist.
func (r *ChatClusterReconciler) ensureSecret(ctx context.Context, cc *chatv1alpha1.ChatCluster, name string, owned bool, build func([]byte) *corev1.Secret) (*corev1.Secret, error) {
	var live corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: name}, &live)
	if err == nil {
		return &live, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	random := make([]byte, 64)
	src := r.Random
	if src == nil {
		src = rand.Reader
	}
	if _, err := io.ReadFull(src, random); err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	secret := build(random)
	if owned {
		if err := controllerutil.SetControllerReference(cc, secret, r.Scheme); err != nil {
			return nil, err
		}
	}
	if err := r.Client.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, errCacheBehind // made by an earlier reconcile the cache has not seen yet
		}
		return nil, fmt.Errorf("create secret %s: %w", name, err)
	}
	r.event(cc, secret, corev1.EventTypeNormal, EventSecretGenerated, "Generate", "generated Secret %s", name)
	return secret, nil
}

// observe fills the status from the children.
func (r *ChatClusterReconciler) observe(ctx context.Context, cc *chatv1alpha1.ChatCluster, mig migration) error {
	cc.Status.ObservedGeneration = cc.Generation
	cc.Status.Endpoint = render.Endpoint(cc)
	if cc.Status.Image != "" {
		cc.Status.Version = render.VersionOf(cc.Status.Image)
	}

	facts := statusFacts{image: cc.Status.Image, migration: mig, generation: cc.Generation}
	for _, role := range render.Workloads {
		st, w, err := r.workloadStatus(ctx, cc, role)
		if err != nil {
			return err
		}
		switch role {
		case render.RoleGateway:
			// The connection autoscaler's part is its own (scaleOnConnections).
			st.Connections, st.Autoscaler = cc.Status.Gateway.Connections, cc.Status.Gateway.Autoscaler
			cc.Status.Gateway = st
		case render.RoleCore:
			cc.Status.Core = st
		default:
			cc.Status.Notification = st
		}
		facts.workloads = append(facts.workloads, w)
	}
	for _, dep := range []string{render.DepPostgres, render.DepRedis, render.DepKafka} {
		if render.ManagedDependency(cc, dep) == nil {
			continue
		}
		var sts appsv1.StatefulSet
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.DependencyName(cc, dep)}, &sts)
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("get statefulset %s: %w", dep, err)
		}
		if err != nil || sts.Status.ReadyReplicas < 1 {
			facts.depsNotReady = append(facts.depsNotReady, dep)
		}
	}
	if err := r.observeCNPG(ctx, cc, &facts); err != nil {
		return err
	}
	for _, c := range conditions(facts) {
		meta.SetStatusCondition(&cc.Status.Conditions, c)
	}
	readyGauge.WithLabelValues(cc.Namespace, cc.Name).Set(boolFloat(meta.IsStatusConditionTrue(cc.Status.Conditions, chatv1alpha1.ConditionReady)))
	return nil
}

// workloadFacts is what the conditions depend on of one workload's Deployment.
type workloadFacts struct {
	role      string
	exists    bool
	desired   int32
	available int32
	// rolledOut: the Deployment controller saw the current spec, every pod runs its
	// template, and that template runs status.image (a workload held on the previous
	// image during a staged upgrade is still rolling).
	rolledOut bool
}

// statusFacts is everything the conditions are computed from.
type statusFacts struct {
	image        string // status.image: empty until a first migration succeeded
	migration    migration
	workloads    []workloadFacts
	depsNotReady []string
	generation   int64
}

// conditions computes Ready, Progressing and Degraded. Ready means serving: every
// workload has at least its desired count of available pods, whether or not a rollout
// is under way (rollouts never go below the desired count); Progressing carries the
// rollout and the migration, Degraded what needs a human.
func conditions(f statusFacts) []metav1.Condition {
	var notReady, rolling []string
	for _, w := range f.workloads {
		if !w.exists || w.available < w.desired {
			notReady = append(notReady, w.role)
		}
		if w.exists && !w.rolledOut {
			rolling = append(rolling, w.role)
		}
	}
	notReady = append(notReady, f.depsNotReady...)
	mig := f.migration

	degraded := metav1.Condition{
		Type: chatv1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: chatv1alpha1.ReasonAsExpected,
		Message: "no failure", ObservedGeneration: f.generation,
	}
	switch {
	case mig.crdMissing != "":
		degraded.Status, degraded.Reason, degraded.Message = metav1.ConditionTrue, chatv1alpha1.ReasonCRDMissing, mig.crdMissing
	case len(mig.secretsMissing) > 0:
		degraded.Status, degraded.Reason = metav1.ConditionTrue, chatv1alpha1.ReasonSecretMissing
		degraded.Message = strings.Join(mig.secretsMissing, "; ")
	case mig.failed != nil:
		degraded.Status, degraded.Reason = metav1.ConditionTrue, chatv1alpha1.ReasonMigrationFailed
		degraded.Message = fmt.Sprintf("migration Job to %s failed (%s: %s); the workloads stay on %s", mig.target, mig.failed.Reason, firstLine(mig.failed.Message), displayImage(mig.running))
	}

	progressing := metav1.Condition{
		Type: chatv1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: chatv1alpha1.ReasonStable,
		Message: "every workload runs the current spec", ObservedGeneration: f.generation,
	}
	switch {
	case mig.pending && mig.waitingFor != "" && mig.waitingCNPG:
		progressing.Status, progressing.Reason, progressing.Message = metav1.ConditionTrue, chatv1alpha1.ReasonDatabaseNotReady, "waiting for the CloudNativePG Cluster "+mig.waitingFor+" to be Ready before migrating to "+mig.target
	case mig.pending && mig.waitingFor != "":
		progressing.Status, progressing.Reason, progressing.Message = metav1.ConditionTrue, chatv1alpha1.ReasonMigrating, "waiting for the managed PostgreSQL StatefulSet "+mig.waitingFor+" to be ready before migrating to "+mig.target
	case mig.pending:
		progressing.Status, progressing.Reason, progressing.Message = metav1.ConditionTrue, chatv1alpha1.ReasonMigrating, "waiting for the migration Job to "+mig.target
	case len(rolling) > 0:
		progressing.Status, progressing.Reason, progressing.Message = metav1.ConditionTrue, chatv1alpha1.ReasonRollingOut, fmt.Sprintf("rolling out: %v", rolling)
	}

	ready := metav1.Condition{
		Type: chatv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: chatv1alpha1.ReasonAllReady,
		Message: "every workload has its desired pods available", ObservedGeneration: f.generation,
	}
	switch {
	case f.image == "" && mig.crdMissing != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, chatv1alpha1.ReasonCRDMissing, mig.crdMissing
	case f.image == "" && len(mig.secretsMissing) > 0:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, chatv1alpha1.ReasonSecretMissing, "waiting for Secrets: "+strings.Join(mig.secretsMissing, "; ")
	case f.image == "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, chatv1alpha1.ReasonMigrating, "no migration has succeeded yet"
	case len(notReady) > 0:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, chatv1alpha1.ReasonWorkloadsNotReady, fmt.Sprintf("not ready: %v", notReady)
	}
	return []metav1.Condition{degraded, progressing, ready}
}

// workloadStatus reports a workload's counts and the facts its conditions need.
func (r *ChatClusterReconciler) workloadStatus(ctx context.Context, cc *chatv1alpha1.ChatCluster, role string) (chatv1alpha1.WorkloadStatus, workloadFacts, error) {
	st := chatv1alpha1.WorkloadStatus{Selector: labels.SelectorFromSet(render.WorkloadLabels(cc, role)).String()}
	w := workloadFacts{role: role}
	var d appsv1.Deployment
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.WorkloadName(cc, role)}, &d)
	if apierrors.IsNotFound(err) {
		st.Ready = "0/0"
		return st, w, nil
	}
	if err != nil {
		return st, w, fmt.Errorf("get deployment %s: %w", role, err)
	}
	w.exists = true
	w.desired = ptr.Deref(d.Spec.Replicas, 1)
	w.available = d.Status.AvailableReplicas
	st.Replicas = d.Status.Replicas
	st.ReadyReplicas = d.Status.ReadyReplicas
	st.UpdatedReplicas = d.Status.UpdatedReplicas
	st.Ready = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, w.desired)
	w.rolledOut = d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= w.desired &&
		d.Status.Replicas == d.Status.UpdatedReplicas && containerImage(&d) == cc.Status.Image
	return st, w, nil
}

// writeStatus updates the status only when it changed: a reconcile that changes nothing
// writes nothing.
func (r *ChatClusterReconciler) writeStatus(ctx context.Context, cc *chatv1alpha1.ChatCluster, before *chatv1alpha1.ChatClusterStatus) error {
	if equality.Semantic.DeepEqual(before, &cc.Status) {
		return nil
	}
	replaced := cc.ResourceVersion
	if err := r.Client.Status().Update(ctx, cc); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	r.statusWrites.Store(client.ObjectKeyFromObject(cc), statusWrite{replaced: replaced, at: time.Now()})
	return nil
}

// statusConflictRetry is how soon a reconcile whose status write lost a race runs again:
// the watch event of the newer ChatCluster usually arrives first anyway.
const statusConflictRetry = 200 * time.Millisecond

// quietConflict turns a lost optimistic-concurrency race into a prompt requeue instead
// of an error: it is routine, not a failure worth an error log or metric.
func quietConflict(err error) (ctrl.Result, error) {
	if err != nil && apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: statusConflictRetry}, nil
	}
	return ctrl.Result{}, err
}

func (r *ChatClusterReconciler) event(cc *chatv1alpha1.ChatCluster, related runtime.Object, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(cc, related, eventType, reason, action, note, args...)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
