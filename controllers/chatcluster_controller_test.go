package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers"
	"github.com/parleychat/parley/controllers/render"
)

// managedCluster has every dependency managed, an Ingress and an autoscaled gateway:
// one ChatCluster that owns every kind of child.
func managedCluster(ns, name string) *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: chatv1alpha1.ChatClusterSpec{
			Gateway: chatv1alpha1.WorkloadSpec{
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				Autoscaling: &chatv1alpha1.AutoscalingSpec{
					MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilization: ptr.To[int32](70),
				},
			},
			Postgres: chatv1alpha1.PostgresSpec{Managed: &chatv1alpha1.ManagedDependency{}},
			Redis:    chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedDependency{}},
			Kafka:    chatv1alpha1.KafkaSpec{Managed: &chatv1alpha1.ManagedDependency{}},
			Files:    chatv1alpha1.FilesSpec{Volume: &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany}},
			Ingress:  &chatv1alpha1.IngressSpec{Host: "chat.example.com", TLSSecretName: "chat-tls"},
		},
	}
}

// externalCluster uses external dependencies only: its children are the three workloads
// and what goes with them.
func externalCluster(ns, name string) *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: chatv1alpha1.ChatClusterSpec{
			Version:  "1.0.0",
			Postgres: chatv1alpha1.PostgresSpec{External: &chatv1alpha1.ExternalPostgres{URLSecret: chatv1alpha1.SecretKeyRef{Name: "pg"}}},
			Redis:    chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedis{URLSecret: chatv1alpha1.SecretKeyRef{Name: "redis"}}},
			Kafka:    chatv1alpha1.KafkaSpec{External: &chatv1alpha1.ExternalKafka{BootstrapServers: []string{"kafka:9092"}}},
		},
	}
}

// installed creates cc, lets its first migration succeed and waits for its Deployments.
func installed(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster) *chatv1alpha1.ChatCluster {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, cc); err != nil {
		t.Fatalf("create chatcluster: %v", err)
	}
	if cc.Spec.Postgres.Managed != nil {
		databaseReady(t, c, cc)
	}
	finishMigration(t, c, cc, render.TargetImage(cc, operatorImage), true)
	for _, role := range render.Workloads {
		waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
	}
	got, err := getCluster(ctx, c, cc.Namespace, cc.Name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitDeployment waits until the workload's Deployment exists and check passes.
func waitDeployment(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, role string, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	eventually(t, "deployment "+role, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.WorkloadName(cc, role)}, &d); err != nil {
			return false, err
		}
		if err := check(&d); err != nil {
			return false, err
		}
		return true, nil
	})
	return &d
}

func imageIs(image string) func(*appsv1.Deployment) error {
	return func(d *appsv1.Deployment) error {
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			return fmt.Errorf("image %s, want %s", got, image)
		}
		return nil
	}
}

func controlledBy(obj client.Object, cc *chatv1alpha1.ChatCluster) error {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != cc.UID || ref.Kind != "ChatCluster" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		return fmt.Errorf("%s: controller reference %+v, want the ChatCluster %s", obj.GetName(), ref, cc.UID)
	}
	return nil
}

func TestCreateMakesEveryChild(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := managedCluster(ns, "chat")
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}

	// Before the first migration succeeds there is no workload: core would start on an
	// empty schema.
	waitCondition(t, c, ns, "chat", chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonMigrating)
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Fatalf("%d Deployments exist before the migration succeeded", len(deps.Items))
	}
	databaseReady(t, c, cc)
	finishMigration(t, c, cc, operatorImage, true)
	for _, role := range render.Workloads {
		waitDeployment(t, c, cc, role, imageIs(operatorImage))
	}
	cc, err := getCluster(ctx, c, ns, "chat")
	if err != nil {
		t.Fatal(err)
	}

	children := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "chat-settings"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chat-signing-key"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "chat-files"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "chat"}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "chat-gateway"}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "chat-internal"}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "chat-dependencies"}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "chat-gateway"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: render.MigrationJobName(cc, operatorImage)}},
	}
	for _, dep := range []string{"postgres", "redis", "kafka"} {
		children = append(children,
			&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "chat-" + dep}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "chat-" + dep}})
	}
	for _, role := range render.Workloads {
		children = append(children,
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chat-" + role}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "chat-" + role}},
			&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "chat-" + role}})
	}
	for _, obj := range children {
		eventually(t, fmt.Sprintf("%T %s", obj, obj.GetName()), func(ctx context.Context) (bool, error) {
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: obj.GetName()}, obj); err != nil {
				return false, err
			}
			err := controlledBy(obj, cc)
			return err == nil, err
		})
	}
	// The database password outlives the ChatCluster, like the database's claim.
	var creds corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "chat-postgres-credentials"}, &creds); err != nil {
		t.Fatal(err)
	}
	if metav1.GetControllerOf(&creds) != nil {
		t.Errorf("chat-postgres-credentials is owned by %+v: deleting the ChatCluster would lose the password of a kept database", metav1.GetControllerOf(&creds))
	}

	// The specs are the rendered ones: spot-check what matters most.
	gw := waitDeployment(t, c, cc, render.RoleGateway, imageIs(operatorImage))
	if got := ptr.Deref(gw.Spec.Replicas, 0); got != 2 {
		// Created at the autoscaler's minimum (not the API server's default of 1); the
		// HPA owns the count from then on.
		t.Errorf("autoscaled gateway created with %d replicas, want autoscaling.minReplicas 2", got)
	}
	pod := gw.Spec.Template.Spec
	ctr := pod.Containers[0]
	if !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) || !ptr.Deref(ctr.SecurityContext.ReadOnlyRootFilesystem, false) ||
		ptr.Deref(ctr.SecurityContext.AllowPrivilegeEscalation, true) || !slices.Equal(ctr.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("gateway pod not hardened: %+v %+v", pod.SecurityContext, ctr.SecurityContext)
	}
	if ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %s and %s", ctr.LivenessProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path)
	}
	if ptr.Deref(pod.TerminationGracePeriodSeconds, 0) < 60 {
		t.Errorf("gateway grace period %d s is too short to drain WebSockets", ptr.Deref(pod.TerminationGracePeriodSeconds, 0))
	}
	if !slices.Equal(ctr.Args, []string{"gateway"}) {
		t.Errorf("gateway args %v", ctr.Args)
	}
	if gw.Spec.Template.Annotations[render.AnnotationConfigChecksum] == "" {
		t.Error("gateway pod template has no config checksum")
	}
	var key corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "chat-signing-key"}, &key); err != nil {
		t.Fatal(err)
	}
	// 64 random bytes as base64url text: it travels as an environment variable.
	if k := string(key.Data[render.SigningKeyKey]); len(k) != 86 || strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("signing key %q: want 86 base64url characters", k)
	}
	var settings corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "chat-settings"}, &settings); err != nil {
		t.Fatal(err)
	}
	if got := settings.Data["PARLEY_KAFKA_BROKERS"]; got != "chat-kafka:9092" {
		t.Errorf("PARLEY_KAFKA_BROKERS = %q", got)
	}
	if got := settings.Data["PARLEY_FILES_MAX_UPLOAD_BYTES"]; got != "26214400" {
		t.Errorf("PARLEY_FILES_MAX_UPLOAD_BYTES = %q: API defaults did not reach the settings", got)
	}

	got := waitCondition(t, c, ns, "chat", chatv1alpha1.ConditionReady, metav1.ConditionFalse, chatv1alpha1.ReasonWorkloadsNotReady)
	if got.Status.Version != "v1.0.0" || got.Status.Image != operatorImage {
		t.Errorf("status version %q image %q", got.Status.Version, got.Status.Image)
	}
	if got.Status.Endpoint != "https://chat.example.com" {
		t.Errorf("status endpoint %q", got.Status.Endpoint)
	}
	// Replica counts come from the Deployments' status as the cache sees them: they can
	// lag the first status write by a reconcile.
	eventually(t, "gateway replica status", func(ctx context.Context) (bool, error) {
		cc, err := getCluster(ctx, c, ns, "chat")
		if err != nil {
			return false, err
		}
		gw := cc.Status.Gateway
		return gw.Ready == "0/2" && gw.Selector != "", fmt.Errorf("gateway status %+v", gw)
	})
	if d := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionDegraded); d == nil || d.Status != metav1.ConditionFalse {
		t.Errorf("Degraded = %+v", d)
	}
	wantEvent(t, c, ns, "chat", "MigrationSucceeded")
}

func wantEvent(t *testing.T, c client.Client, ns, name, reason string) {
	t.Helper()
	eventually(t, "event "+reason, func(ctx context.Context) (bool, error) {
		var events eventsv1.EventList
		if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == reason && e.Regarding.Name == name && e.Regarding.Kind == "ChatCluster" {
				return true, nil
			}
		}
		return false, nil
	})
}

func TestReconcileThatChangesNothingWritesNothing(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, managedCluster(ns, "quiet"))
	waitCondition(t, c, ns, "quiet", chatv1alpha1.ConditionReady, metav1.ConditionFalse, chatv1alpha1.ReasonWorkloadsNotReady)

	// The manager's own workers keep running: one that started before the cluster
	// settled may finish now and try a status write from its stale copy (a 409, but a
	// write in the manager's log). Only the test's reconciles are counted, by a
	// reconciler of their own over the manager's cache.
	own, log := ownReconciler()
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: cc.Name}}
	settle(t, own, log, req)
	before := len(log.in(ns))
	for range 3 {
		if _, err := own.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if after := log.in(ns); len(after) != before {
		t.Fatalf("reconciles that change nothing wrote: %v", after[before:])
	}
	if len(writes.in(ns)) == 0 {
		t.Fatal("the write log saw no write at all: the counting client is not in use")
	}
}

// ownReconciler is a reconciler like the manager's, over the same cache, whose writes
// go to a log of its own: it tells the writes of the test's direct reconciles from those
// of the manager's workers, which run concurrently.
func ownReconciler() (*controllers.ChatClusterReconciler, *writeLog) {
	log := &writeLog{}
	return &controllers.ChatClusterReconciler{
		Client:       &countingClient{Client: reconciler.Client.(*countingClient).Client, log: log},
		APIReader:    reconciler.APIReader,
		Scheme:       reconciler.Scheme,
		DefaultImage: reconciler.DefaultImage,
	}, log
}

// settle waits until a reconcile by r writes nothing while the manager's workers wrote
// nothing either in the namespace: the cluster has converged and no worker is midway.
func settle(t *testing.T, r *controllers.ChatClusterReconciler, log *writeLog, req ctrl.Request) {
	t.Helper()
	ns := req.Namespace
	eventually(t, "a reconcile without writes", func(ctx context.Context) (bool, error) {
		before, managerBefore := len(log.in(ns)), len(writes.in(ns))
		if _, err := r.Reconcile(ctx, req); err != nil {
			return false, err
		}
		// Let a worker the last write triggered pick it up before judging.
		time.Sleep(300 * time.Millisecond)
		after, managerAfter := log.in(ns), writes.in(ns)
		if len(after) != before || len(managerAfter) != managerBefore {
			return false, fmt.Errorf("still writing: %v, manager %v", after[before:], managerAfter[managerBefore:])
		}
		return true, nil
	})
}

// Fields another manager adds to an owned object (an env var by kubectl edit, a key in
// the settings ConfigMap) are not the operator's: server-side apply leaves them, and the
// operator, comparing as apply would, sends nothing for them either.
func TestForeignFieldsCauseNoWrites(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "foreign"))
	own, log := ownReconciler()
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: cc.Name}}
	settle(t, own, log, req)

	d := waitDeployment(t, c, cc, render.RoleCore, func(*appsv1.Deployment) error { return nil })
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "BY_HAND", Value: "1"})
	if err := c.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	var settings corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "foreign-settings"}, &settings); err != nil {
		t.Fatal(err)
	}
	settings.Data["BY_HAND"] = "1"
	if err := c.Update(ctx, &settings); err != nil {
		t.Fatal(err)
	}
	// The operator's cache must have seen both edits before its reconciles count.
	eventually(t, "the cache sees the edits", func(ctx context.Context) (bool, error) {
		var d appsv1.Deployment
		var cm corev1.ConfigMap
		if err := reconciler.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "foreign-core"}, &d); err != nil {
			return false, err
		}
		if err := reconciler.Client.Get(ctx, client.ObjectKeyFromObject(&settings), &cm); err != nil {
			return false, err
		}
		env := d.Spec.Template.Spec.Containers[0].Env
		return env[len(env)-1].Name == "BY_HAND" && cm.Data["BY_HAND"] == "1", nil
	})
	settle(t, own, log, req)
	before := len(log.in(ns))
	for range 3 {
		if _, err := own.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if after := log.in(ns); len(after) != before {
		t.Fatalf("reconciles with foreign fields present wrote: %v", after[before:])
	}
}

// A Secret the spec names that is missing, or lacks the key, is reported by name before
// any pod that needs it is created; once it is there the migration runs.
func TestMissingSecretIsReportedBeforePods(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := externalCluster(ns, "nosecret")
	cc.Spec.Postgres.External.URLSecret = chatv1alpha1.SecretKeyRef{Name: "pg-app", Key: "uri"}
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	got := waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, chatv1alpha1.ReasonSecretMissing)
	if msg := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionDegraded).Message; !strings.Contains(msg, "secret "+ns+"/pg-app not found") {
		t.Fatalf("message %q does not name the Secret", msg)
	}
	jobKey := client.ObjectKey{Namespace: ns, Name: render.MigrationJobName(cc, render.TargetImage(cc, operatorImage))}
	if err := c.Get(ctx, jobKey, &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Fatalf("migration Job created without its Secret: %v", err)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-app"}, StringData: map[string]string{"url": "postgres://x"}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing key named", func(ctx context.Context) (bool, error) {
		cc, err := getCluster(ctx, c, ns, cc.Name)
		if err != nil {
			return false, err
		}
		d := meta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionDegraded)
		return d != nil && d.Message == "secret "+ns+"/pg-app has no key uri (needed by migrate, core, notification, gateway)", fmt.Errorf("degraded %+v", d)
	})
	if err := c.Get(ctx, jobKey, &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Fatalf("migration Job created without its key: %v", err)
	}

	secret.StringData = map[string]string{"uri": "postgres://x"}
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	finishMigration(t, c, cc, render.TargetImage(cc, operatorImage), true)
	waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionDegraded, metav1.ConditionFalse, chatv1alpha1.ReasonAsExpected)
	waitDeployment(t, c, cc, render.RoleCore, func(*appsv1.Deployment) error { return nil })
}

// databaseReady plays the StatefulSet controller: it reports the managed PostgreSQL's pod
// ready, which the migration Job waits for.
func databaseReady(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster) {
	t.Helper()
	var sts appsv1.StatefulSet
	key := client.ObjectKey{Namespace: cc.Namespace, Name: render.DependencyName(cc, render.DepPostgres)}
	eventually(t, "statefulset "+key.Name, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, key, &sts) == nil, nil
	})
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas, sts.Status.CurrentReplicas, sts.Status.UpdatedReplicas = 1, 1, 1, 1, 1
	if err := c.Status().Update(context.Background(), &sts); err != nil {
		t.Fatalf("set statefulset status: %v", err)
	}
}

// The migration Job waits for the managed PostgreSQL's pod to be ready.
func TestMigrationWaitsForManagedDatabase(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := managedCluster(ns, "waitdb")
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	got := waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonMigrating)
	if msg := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionProgressing).Message; !strings.Contains(msg, "waitdb-postgres") {
		t.Fatalf("progressing %q does not say it waits for the database", msg)
	}
	// Reconciles after the StatefulSet exists still create no Job.
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: cc.Name}}
	eventually(t, "statefulset in the operator's cache", func(ctx context.Context) (bool, error) {
		return reconciler.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waitdb-postgres"}, &appsv1.StatefulSet{}) == nil, nil
	})
	if _, err := reconciler.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	jobKey := client.ObjectKey{Namespace: ns, Name: render.MigrationJobName(cc, render.TargetImage(cc, operatorImage))}
	if err := c.Get(ctx, jobKey, &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Fatalf("migration Job created while PostgreSQL is not ready: %v", err)
	}
	databaseReady(t, c, cc)
	finishMigration(t, c, cc, render.TargetImage(cc, operatorImage), true)
	waitDeployment(t, c, cc, render.RoleCore, func(*appsv1.Deployment) error { return nil })
}

func TestScaleSubresourceScalesGateway(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "scaled"))

	scale := &autoscalingv1.Scale{}
	if err := c.SubResource("scale").Get(ctx, cc, scale); err != nil {
		t.Fatalf("get scale: %v", err)
	}
	if scale.Spec.Replicas != 2 {
		t.Fatalf("scale reports %d replicas, want the default 2", scale.Spec.Replicas)
	}
	scale.Spec.Replicas = 5
	if err := c.SubResource("scale").Update(ctx, cc, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("update scale: %v", err)
	}
	waitDeployment(t, c, cc, render.RoleGateway, func(d *appsv1.Deployment) error {
		if got := ptr.Deref(d.Spec.Replicas, 0); got != 5 {
			return fmt.Errorf("gateway replicas %d", got)
		}
		return nil
	})
	eventually(t, "scale selector", func(ctx context.Context) (bool, error) {
		if err := c.SubResource("scale").Get(ctx, cc, scale); err != nil {
			return false, err
		}
		return strings.Contains(scale.Status.Selector, "app.kubernetes.io/component=gateway"), fmt.Errorf("selector %q", scale.Status.Selector)
	})
	if d := waitDeployment(t, c, cc, render.RoleCore, func(*appsv1.Deployment) error { return nil }); ptr.Deref(d.Spec.Replicas, 0) != 2 {
		t.Errorf("core replicas %d changed with the gateway's", ptr.Deref(d.Spec.Replicas, 0))
	}
}

// An autoscaled gateway's replicas are the HPA's: kubectl scale is refused with a reason
// rather than accepted and ignored.
func TestScaleOfAutoscaledGatewayIsRefused(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := externalCluster(ns, "autoscaled")
	cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 6, TargetConnectionsPerPod: ptr.To[int32](1000)}
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	err := kubectlScale(ctx, c, cc, 5)
	if err == nil || !strings.Contains(err.Error(), "autoscaling is set") {
		t.Fatalf("kubectl scale of an autoscaled gateway: %v, want a refusal naming autoscaling", err)
	}
	// Turning autoscaling off and setting replicas in one edit is fine.
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Gateway.Autoscaling = nil
		cc.Spec.Gateway.Replicas = ptr.To[int32](3)
	})
}

// A deleted autoscaled Deployment comes back at the autoscaler's minimum, not at the API
// server's default of one pod, and then leaves the count to the autoscaler.
func TestRecreatedAutoscaledDeploymentStartsAtMinimum(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := externalCluster(ns, "recreated")
	// CPU: the HPA owns the count (with connections alone the operator's connection
	// autoscaler owns it and sets it back; see autoscale_envtest_test.go).
	cc.Spec.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 3, MaxReplicas: 6, TargetCPUUtilization: ptr.To[int32](70)}
	cc = installed(t, c, cc)
	d := waitDeployment(t, c, cc, render.RoleGateway, func(*appsv1.Deployment) error { return nil })
	oldUID := d.UID
	if err := c.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	// When the operator's cache still shows the deleted Deployment, its apply recreates it
	// at the API server's default of one pod and the same reconcile sets the minimum right
	// after (applyPlan): wait for that write rather than judge the first sight of the new
	// object, which can fall between the two.
	d = waitDeployment(t, c, cc, render.RoleGateway, func(d *appsv1.Deployment) error {
		if d.UID == oldUID {
			return fmt.Errorf("still the deleted Deployment")
		}
		if got := ptr.Deref(d.Spec.Replicas, 0); got != 3 {
			return fmt.Errorf("recreated autoscaled gateway has %d replicas, want the minimum 3", got)
		}
		return nil
	})
	// The autoscaler then owns the count: the operator does not set it back. A merge
	// patch, as the HPA's scale writes are: an Update would race the operator's own writes
	// to the fresh Deployment (status, managed fields) and fail on a stale resourceVersion.
	base := d.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](5)
	if err := c.Patch(ctx, d, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: cc.Name}}
	eventually(t, "a reconcile without writes", func(ctx context.Context) (bool, error) {
		before := len(writes.in(ns))
		if _, err := reconciler.Reconcile(ctx, req); err != nil {
			return false, err
		}
		after := writes.in(ns)
		return len(after) == before, fmt.Errorf("still writing: %v", after[before:])
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(d.Spec.Replicas, 0); got != 5 {
		t.Fatalf("replicas %d after the operator settled, want the autoscaler's 5", got)
	}
}

// A reconcile cut short by the operator shutting down (its context canceled) is not an
// error: controller-runtime would log it at ERROR on every clean shutdown of a leader.
func TestShutdownIsNotAReconcileError(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "shutdown"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: cc.Name}}); err != nil {
		t.Fatalf("reconcile during shutdown returned %v", err)
	}
}

func TestDeletedChildIsRestored(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "restore"))

	victims := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restore-core"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restore-gateway"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restore-settings"}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restore-notification"}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "restore-internal"}},
	}
	for _, obj := range victims {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		oldUID := obj.GetUID()
		if err := c.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("%T %s restored", obj, obj.GetName()), func(ctx context.Context) (bool, error) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return false, err
			}
			if obj.GetUID() == oldUID {
				return false, fmt.Errorf("still the deleted object")
			}
			err := controlledBy(obj, cc)
			return err == nil, err
		})
	}
}

func TestEditedChildIsReverted(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "revert"))

	d := waitDeployment(t, c, cc, render.RoleCore, imageIs("parley:1.0.0"))
	d.Spec.Template.Spec.Containers[0].Image = "evil:latest"
	d.Spec.Replicas = ptr.To[int32](9)
	if err := c.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c, cc, render.RoleCore, func(d *appsv1.Deployment) error {
		if err := imageIs("parley:1.0.0")(d); err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})

	var settings corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "revert-settings"}, &settings); err != nil {
		t.Fatal(err)
	}
	settings.Data["PARLEY_REGISTRATION"] = "closed"
	if err := c.Update(ctx, &settings); err != nil {
		t.Fatal(err)
	}
	eventually(t, "settings reverted", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(&settings), &settings); err != nil {
			return false, err
		}
		return settings.Data["PARLEY_REGISTRATION"] == "open", fmt.Errorf("registration %q", settings.Data["PARLEY_REGISTRATION"])
	})
}

func TestSettingsChangeRollsPods(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "roll"))
	before := map[string]string{}
	for _, role := range render.Workloads {
		d := waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
		before[role] = d.Spec.Template.Annotations[render.AnnotationConfigChecksum]
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Limits.MaxRoomMembers = 50
	})
	for _, role := range render.Workloads {
		waitDeployment(t, c, cc, role, func(d *appsv1.Deployment) error {
			if got := d.Spec.Template.Annotations[render.AnnotationConfigChecksum]; got == before[role] {
				return fmt.Errorf("checksum unchanged")
			}
			return nil
		})
	}
	var settings corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "roll-settings"}, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.Data["PARLEY_MAX_ROOM_MEMBERS"] != "50" {
		t.Errorf("PARLEY_MAX_ROOM_MEMBERS = %q", settings.Data["PARLEY_MAX_ROOM_MEMBERS"])
	}
}

func TestRemovedAutoscalingDeletesHPA(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	cc := externalCluster(ns, "hpa")
	cc.Spec.Core.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetCPUUtilization: ptr.To[int32](60)}
	cc.Spec.Core.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	cc = installed(t, c, cc)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	key := client.ObjectKey{Namespace: ns, Name: "hpa-core"}
	eventually(t, "core HPA", func(ctx context.Context) (bool, error) { return c.Get(ctx, key, hpa) == nil, nil })
	if hpa.Spec.MaxReplicas != 4 || ptr.Deref(hpa.Spec.MinReplicas, 0) != 2 {
		t.Errorf("HPA %d..%d", ptr.Deref(hpa.Spec.MinReplicas, 0), hpa.Spec.MaxReplicas)
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Core.Autoscaling = nil
	})
	eventually(t, "core HPA deleted", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, key, hpa)
		return apierrors.IsNotFound(err), err
	})
	waitDeployment(t, c, cc, render.RoleCore, func(d *appsv1.Deployment) error {
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 2 {
			return fmt.Errorf("replicas %d after autoscaling was removed", r)
		}
		return nil
	})
}

// TestAddedAutoscalingKeepsTheRunningReplicas: when the operator stops setting replicas
// (the HPA takes over), a running workload keeps its count instead of falling back to the
// API server's default of 1 until the HPA first acts.
func TestAddedAutoscalingKeepsTheRunningReplicas(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	cc := externalCluster(ns, "handoff")
	cc.Spec.Core.Replicas = ptr.To[int32](6)
	cc = installed(t, c, cc)
	waitDeployment(t, c, cc, render.RoleCore, func(d *appsv1.Deployment) error {
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 6 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Core.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 4, MaxReplicas: 10, TargetCPUUtilization: ptr.To[int32](60)}
		cc.Spec.Core.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	})
	key := client.ObjectKey{Namespace: ns, Name: "handoff-core"}
	eventually(t, "core HPA", func(ctx context.Context) (bool, error) {
		return c.Get(ctx, key, &autoscalingv2.HorizontalPodAutoscaler{}) == nil, nil
	})
	var d appsv1.Deployment
	eventually(t, "the operator let go of core's replicas", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, &d); err != nil {
			return false, err
		}
		return !controllers.OwnsReplicas(&d, controllers.FieldOwner), fmt.Errorf("still owned by the operator")
	})
	if r := ptr.Deref(d.Spec.Replicas, 0); r != 6 {
		t.Fatalf("core has %d replicas once autoscaling was added, want the running 6", r)
	}
}

func TestInvalidSpecsAreRejected(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	tests := []struct {
		name   string
		mutate func(*chatv1alpha1.ChatCluster)
		want   string
	}{
		{"postgres external and managed", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Postgres.Managed = &chatv1alpha1.ManagedDependency{}
		}, "set exactly one of postgres.external, postgres.managed or postgres.cnpg"},
		{"redis neither", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Redis.External = nil
		}, "set exactly one of redis.external or redis.managed"},
		{"kafka both", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Kafka.Managed = &chatv1alpha1.ManagedDependency{}
		}, "set exactly one of kafka.external or kafka.managed"},
		{"autoscaling min above max", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 5, MaxReplicas: 3, TargetCPUUtilization: ptr.To[int32](50)}
		}, "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"},
		{"autoscaling without target", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3}
		}, "set targetCPUUtilization, targetConnectionsPerPod or both"},
		{"connections target on core", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Core.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3, TargetConnectionsPerPod: ptr.To[int32](100)}
		}, "core.autoscaling.targetConnectionsPerPod is only valid for the gateway"},
		{"version and image", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Image = "parley:2"
		}, "set either version or image, not both"},
		{"files on volume and s3", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{}
			cc.Spec.Files.S3 = &chatv1alpha1.FilesS3{Endpoint: "https://s3", Bucket: "abc", CredentialsSecret: "s3"}
		}, "set at most one of files.volume or files.s3"},
		{"read-write-once files volume with two core pods", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Core.Replicas = ptr.To[int32](2)
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteOnce}
		}, "files.volume with accessMode ReadWriteOnce or ReadWriteOncePod serves only one core pod"},
		{"read-write-once files volume with autoscaled core", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Core.Replicas = ptr.To[int32](1)
			cc.Spec.Core.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3, TargetCPUUtilization: ptr.To[int32](50)}
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteOncePod}
		}, "serves only one core pod"},
		{"name too long", func(cc *chatv1alpha1.ChatCluster) {
			cc.Name = strings.Repeat("a", 41)
		}, "metadata.name must be at most 40 characters"},
		{"negative replicas", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Core.Replicas = ptr.To[int32](-1)
		}, "spec.core.replicas"},
		{"empty core pool", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Core.PostgresMaxConns = ptr.To[int32](0)
		}, "spec.core.postgresMaxConns"},
		{"gateway pool above 1000", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Gateway.PostgresMaxConns = ptr.To[int32](1001)
		}, "spec.gateway.postgresMaxConns"},
		{"bad version", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Version = "latest"
		}, "spec.version"},
		{"bad registration", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Auth.Registration = "everyone"
		}, "spec.auth.registration"},
		{"bad kafka bootstrap", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Kafka.External.BootstrapServers = []string{"kafka"}
		}, "spec.kafka.external.bootstrapServers[0]"},
		{"invalid files storage class name", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{StorageClassName: ptr.To("Fast_SSD")}}
		}, "storageClassName must be a DNS subdomain"},
		{"invalid managed storage class name", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Redis = chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedDependency{Storage: chatv1alpha1.StorageSpec{StorageClassName: ptr.To("-ssd")}}}
		}, "storageClassName must be a DNS subdomain"},
		{"negative files size", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{Size: resource.MustParse("-1Gi")}}
		}, "spec.files.volume.size: Invalid value: \"-1Gi\": size must not be negative"},
		{"negative managed size", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Kafka = chatv1alpha1.KafkaSpec{Managed: &chatv1alpha1.ManagedDependency{Storage: chatv1alpha1.StorageSpec{Size: resource.MustParse("-10M")}}}
		}, "size must not be negative"},
		{"cpu autoscaling without cpu requests", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetCPUUtilization: ptr.To[int32](70)}
			cc.Spec.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}
		}, "autoscaling.targetCPUUtilization needs resources.requests.cpu"},
		{"cpu autoscaling of notification without resources", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Notification.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 4, TargetCPUUtilization: ptr.To[int32](70)}
		}, "spec.notification: Invalid value: autoscaling.targetCPUUtilization needs resources.requests.cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := externalCluster(ns, "bad")
			tt.mutate(cc)
			err := c.Create(ctx, cc)
			if err == nil {
				_ = c.Delete(ctx, cc)
				t.Fatal("accepted")
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want Invalid mentioning %q", err, tt.want)
			}
		})
	}

	t.Run("managed storage is immutable", func(t *testing.T) {
		cc := externalCluster(ns, "managed-storage")
		cc.Spec.Redis = chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedDependency{}}
		if err := c.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
		err := tryUpdateCluster(c, cc, func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Redis.Managed.Storage.Size = resource.MustParse("20Gi")
		})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "managed storage is immutable") {
			t.Fatalf("update error %v, want the immutability message", err)
		}
	})

	t.Run("cpu autoscaling with cpu requests or limits is accepted", func(t *testing.T) {
		cc := externalCluster(ns, "cpu-ok")
		cc.Spec.Gateway.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetCPUUtilization: ptr.To[int32](70)}
		cc.Spec.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
		cc.Spec.Core.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetCPUUtilization: ptr.To[int32](70)}
		cc.Spec.Core.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		if err := c.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
	})

	// The files claim: it may grow, never shrink, and its class and access mode are the
	// claim's, which the API server would refuse to change.
	transitions := []struct {
		name   string
		create func(*chatv1alpha1.FilesVolume)
		update func(*chatv1alpha1.FilesVolume)
		want   string // "" = accepted
	}{
		{"files volume grows", nil, func(v *chatv1alpha1.FilesVolume) { v.Size = resource.MustParse("20Gi") }, ""},
		{"files volume default grows", func(v *chatv1alpha1.FilesVolume) { v.Size = resource.Quantity{} }, func(v *chatv1alpha1.FilesVolume) { v.Size = resource.MustParse("11Gi") }, ""},
		{"files volume default cannot shrink", func(v *chatv1alpha1.FilesVolume) { v.Size = resource.Quantity{} }, func(v *chatv1alpha1.FilesVolume) { v.Size = resource.MustParse("9Gi") }, "size cannot shrink"},
		{"files volume cannot shrink", nil, func(v *chatv1alpha1.FilesVolume) { v.Size = resource.MustParse("5Gi") }, "size cannot shrink"},
		{"files storage class cannot be set after creation", nil, func(v *chatv1alpha1.FilesVolume) { v.StorageClassName = ptr.To("fast") },
			"files.volume.storageClassName cannot be set or removed after creation"},
		{"files storage class cannot be removed after creation", func(v *chatv1alpha1.FilesVolume) { v.StorageClassName = ptr.To("fast") },
			func(v *chatv1alpha1.FilesVolume) { v.StorageClassName = nil }, "files.volume.storageClassName cannot be set or removed after creation"},
		{"files access mode is immutable", nil, func(v *chatv1alpha1.FilesVolume) { v.AccessMode = corev1.ReadWriteOnce },
			"files.volume.accessMode is immutable"},
	}
	for i, tt := range transitions {
		t.Run(tt.name, func(t *testing.T) {
			cc := externalCluster(ns, fmt.Sprintf("files-%d", i))
			cc.Spec.Core.Replicas = ptr.To[int32](1)
			cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{Size: resource.MustParse("10Gi")}}
			if tt.create != nil {
				tt.create(cc.Spec.Files.Volume)
			}
			if err := c.Create(ctx, cc); err != nil {
				t.Fatal(err)
			}
			err := tryUpdateCluster(c, cc, func(cc *chatv1alpha1.ChatCluster) { tt.update(cc.Spec.Files.Volume) })
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("update error %v, want Invalid mentioning %q", err, tt.want)
			}
		})
	}

	t.Run("storage class is immutable", func(t *testing.T) {
		cc := externalCluster(ns, "immutable")
		cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{StorageClassName: ptr.To("fast")}}
		if err := c.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
		err := tryUpdateCluster(c, cc, func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Files.Volume.StorageClassName = ptr.To("slow")
		})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "storageClassName is immutable") {
			t.Fatalf("update error %v, want the immutability message", err)
		}
	})
}

func TestUpgradeMigratesBeforeRolling(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "up"))
	for _, role := range render.Workloads {
		waitDeployment(t, c, cc, role, imageIs("parley:1.0.0"))
	}

	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Version = "1.1.0"
	})
	// The reconcile that reports Migrating for this generation created the Job and
	// applied the workloads: they must still run the old image.
	got := waitCondition(t, c, ns, "up", chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonMigrating)
	if got.Status.Version != "1.0.0" {
		t.Errorf("status version %q during the migration, want 1.0.0", got.Status.Version)
	}
	var job batchv1.Job
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.MigrationJobName(cc, "parley:1.1.0")}, &job); err != nil {
		t.Fatalf("no migration job: %v", err)
	}
	if ctr := job.Spec.Template.Spec.Containers[0]; ctr.Image != "parley:1.1.0" || !slices.Equal(ctr.Args, []string{"migrate"}) {
		t.Errorf("job runs %s %v", ctr.Image, ctr.Args)
	}
	if err := controlledBy(&job, cc); err != nil {
		t.Error(err)
	}
	for _, role := range render.Workloads {
		d := waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
		if err := imageIs("parley:1.0.0")(d); err != nil {
			t.Errorf("%s rolled before the migration succeeded: %v", role, err)
		}
	}
	wantEvent(t, c, ns, "up", "MigrationStarted")

	finishMigration(t, c, cc, "parley:1.1.0", true)
	// One workload at a time, core first: each waits for the previous one's rollout,
	// which this test reports in place of the Deployment controller.
	for i, role := range render.Workloads {
		d := waitDeployment(t, c, cc, role, imageIs("parley:1.1.0"))
		for _, later := range render.Workloads[i+1:] {
			ld := waitDeployment(t, c, cc, later, func(*appsv1.Deployment) error { return nil })
			if err := imageIs("parley:1.0.0")(ld); err != nil {
				t.Errorf("%s rolled before %s finished: %v", later, role, err)
			}
		}
		rollOut(t, c, d)
	}
	eventually(t, "status version 1.1.0", func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, "up")
		if err != nil {
			return false, err
		}
		return got.Status.Version == "1.1.0" && got.Status.Image == "parley:1.1.0", fmt.Errorf("status %q %q", got.Status.Version, got.Status.Image)
	})
	wantEvent(t, c, ns, "up", "MigrationSucceeded")
	done := waitCondition(t, c, ns, "up", chatv1alpha1.ConditionReady, metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	if done.Status.Gateway.Ready != "2/2" {
		t.Errorf("gateway %s after the rollout", done.Status.Gateway.Ready)
	}
	waitCondition(t, c, ns, "up", chatv1alpha1.ConditionProgressing, metav1.ConditionFalse, chatv1alpha1.ReasonStable)
	eventually(t, "the 1.0.0 migration Job pruned", func(ctx context.Context) (bool, error) {
		var jobs batchv1.JobList
		if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
			return false, err
		}
		var names []string
		for _, j := range jobs.Items {
			if j.DeletionTimestamp == nil {
				names = append(names, j.Annotations[render.AnnotationImage])
			}
		}
		return slices.Equal(names, []string{"parley:1.1.0"}), fmt.Errorf("jobs for %v", names)
	})
}

// rollOut plays the Deployment controller: every pod of d's current template is ready.
func rollOut(t *testing.T, c client.Client, d *appsv1.Deployment) {
	t.Helper()
	n := ptr.Deref(d.Spec.Replicas, 1)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
	}
	if err := c.Status().Update(context.Background(), d); err != nil {
		t.Fatalf("set %s status: %v", d.Name, err)
	}
}

func TestFailedMigrationKeepsOldVersion(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "fail"))

	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Version = "2.0.0"
	})
	finishMigration(t, c, cc, "parley:2.0.0", false)
	got := waitCondition(t, c, ns, "fail", chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, chatv1alpha1.ReasonMigrationFailed)
	msg := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionDegraded).Message
	if !strings.Contains(msg, "BackoffLimitExceeded") || !strings.Contains(msg, "parley:1.0.0") {
		t.Errorf("Degraded message %q does not name the Job's reason and the kept image", msg)
	}
	if got.Status.Version != "1.0.0" {
		t.Errorf("status version %q, want the old 1.0.0", got.Status.Version)
	}
	for _, role := range render.Workloads {
		d := waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
		if err := imageIs("parley:1.0.0")(d); err != nil {
			t.Errorf("%s: %v after a failed migration", role, err)
		}
	}
	wantEvent(t, c, ns, "fail", "MigrationFailed")

	// Going back to the running version clears the failure.
	cc, err := getCluster(ctx, c, ns, "fail")
	if err != nil {
		t.Fatal(err)
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Version = "1.0.0"
	})
	waitCondition(t, c, ns, "fail", chatv1alpha1.ConditionDegraded, metav1.ConditionFalse, chatv1alpha1.ReasonAsExpected)

	// The failed Job is pruned, so asking for 2.0.0 again retries with a fresh Job.
	failedJob := client.ObjectKey{Namespace: ns, Name: render.MigrationJobName(cc, "parley:2.0.0")}
	eventually(t, "failed Job pruned", func(ctx context.Context) (bool, error) {
		var job batchv1.Job
		err := c.Get(ctx, failedJob, &job)
		return apierrors.IsNotFound(err) || (err == nil && job.DeletionTimestamp != nil), err
	})
}

func TestPausedChangesNothing(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "paused"))
	before := waitDeployment(t, c, cc, render.RoleGateway, func(*appsv1.Deployment) error { return nil })

	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Paused = true
	})
	waitCondition(t, c, ns, "paused", chatv1alpha1.ConditionProgressing, metav1.ConditionFalse, chatv1alpha1.ReasonPaused)

	cc, err := getCluster(ctx, c, ns, "paused")
	if err != nil {
		t.Fatal(err)
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Gateway.Replicas = ptr.To[int32](7)
		cc.Spec.Version = "3.0.0"
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "paused-core"}}
	if err := c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "paused", chatv1alpha1.ConditionProgressing, metav1.ConditionFalse, chatv1alpha1.ReasonPaused)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "paused"}}
	if _, err := reconciler.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}

	after := waitDeployment(t, c, cc, render.RoleGateway, func(*appsv1.Deployment) error { return nil })
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("paused gateway Deployment changed: replicas %d image %s", ptr.Deref(after.Spec.Replicas, 0), after.Spec.Template.Spec.Containers[0].Image)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); !apierrors.IsNotFound(err) {
		t.Errorf("deleted Service came back while paused: %v", err)
	}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 {
		t.Errorf("%d migration Jobs while paused, want only the install's", len(jobs.Items))
	}

	// Unpausing resumes: the Service returns and the upgrade starts with its Job.
	cc, err = getCluster(ctx, c, ns, "paused")
	if err != nil {
		t.Fatal(err)
	}
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Paused = false
	})
	eventually(t, "service restored after unpause", func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKeyFromObject(svc), svc) == nil, nil
	})
	waitCondition(t, c, ns, "paused", chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonMigrating)
}

// While paused the operator changes nothing but keeps observing: the status follows the
// workloads (and says it is paused) instead of going stale.
func TestPausedStatusStaysCurrent(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "pausedstatus"))
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Paused = true })
	waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionProgressing, metav1.ConditionFalse, chatv1alpha1.ReasonPaused)

	// Play the Deployment controller: every workload's pods become available.
	for _, role := range render.Workloads {
		d := waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
		n := ptr.Deref(d.Spec.Replicas, 1)
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, ReadyReplicas: n, AvailableReplicas: n, UpdatedReplicas: n}
		if err := c.Status().Update(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got := waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionReady, metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	if got.Status.Gateway.Ready != "2/2" {
		t.Fatalf("paused status gateway %q, want 2/2", got.Status.Gateway.Ready)
	}
	if p := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionProgressing); p.Reason != chatv1alpha1.ReasonPaused {
		t.Fatalf("progressing %+v, want Paused", p)
	}
}

// TestRejectedChildDegradesWithoutBlockingOthers changes the storage class of a files
// claim the ChatCluster no longer lists (files.volume removed, then added back with
// another class: no transition rule can see that), which the API server refuses with a
// Go struct diff of the claim's spec. The ChatCluster reports it readably, and the rest
// of the spec still applies.
func TestRejectedChildDegradesWithoutBlockingOthers(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := externalCluster(ns, "refused")
	cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{StorageClassName: ptr.To("fast")}}
	cc = installed(t, c, cc)
	eventually(t, "files claim", func(ctx context.Context) (bool, error) {
		var claim corev1.PersistentVolumeClaim
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "refused-files"}, &claim) == nil, nil
	})
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Files.Volume = nil })
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Files.Volume = &chatv1alpha1.FilesVolume{AccessMode: corev1.ReadWriteMany, StorageSpec: chatv1alpha1.StorageSpec{StorageClassName: ptr.To("slow")}}
		cc.Spec.Limits.MaxRoomMembers = 77
	})
	got := waitCondition(t, c, ns, "refused", chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, chatv1alpha1.ReasonReconcileError)
	msg := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionDegraded).Message
	t.Logf("Degraded: %s", msg)
	if !strings.Contains(msg, "refused-files") || !strings.Contains(msg, "immutable") {
		t.Errorf("Degraded message %q does not name the refused claim and why", msg)
	}
	for _, dump := range []string{"\n", "PersistentVolumeClaimSpec", "{", "&"} {
		if strings.Contains(msg, dump) {
			t.Errorf("Degraded message holds %q, a Go struct dump: %q", dump, msg)
		}
	}
	eventually(t, "settings applied despite the rejected claim", func(ctx context.Context) (bool, error) {
		var settings corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "refused-settings"}, &settings); err != nil {
			return false, err
		}
		return settings.Data["PARLEY_MAX_ROOM_MEMBERS"] == "77", fmt.Errorf("max room members %q", settings.Data["PARLEY_MAX_ROOM_MEMBERS"])
	})
	wantEvent(t, c, ns, "refused", "ReconcileError")
	var events eventsv1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == "ReconcileError" && strings.Contains(e.Note, "PersistentVolumeClaimSpec") {
			t.Errorf("event note holds a Go struct dump: %q", e.Note)
		}
	}

	// Dropping files.volume again clears the failure (the claim is kept).
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Files.Volume = nil })
	waitCondition(t, c, ns, "refused", chatv1alpha1.ConditionDegraded, metav1.ConditionFalse, chatv1alpha1.ReasonAsExpected)
}

// TestDeletedSigningKeyRotatesAndRollsPods deletes the signing key, the documented way
// to rotate it: a new key is generated, the old one is kept as the previous key for one
// token lifetime, the pods that read it roll, and once that lifetime is over the
// previous key is dropped and they roll again.
func TestDeletedSigningKeyRotatesAndRollsPods(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	cc := externalCluster(ns, "rotate")
	cc.Spec.Auth.TokenTTL = "4s"
	cc = installed(t, c, cc)
	const checksum = "chat.parley.dev/secret-checksum"
	key := client.ObjectKey{Namespace: ns, Name: "rotate-signing-key"}
	var old corev1.Secret
	if err := c.Get(ctx, key, &old); err != nil {
		t.Fatal(err)
	}
	sums := func() map[string]string {
		out := map[string]string{}
		for _, role := range render.Workloads {
			d := waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil })
			out[role] = d.Spec.Template.Annotations[checksum]
		}
		return out
	}
	before := sums()
	for _, role := range []string{render.RoleGateway, render.RoleCore} {
		if before[role] == "" {
			t.Fatalf("%s: no %s annotation on the pod template", role, checksum)
		}
	}
	// waitRolled waits until the gateway's and core's checksums differ from was, and
	// checks that notification, which does not read the key, keeps its pods.
	waitRolled := func(was map[string]string) map[string]string {
		t.Helper()
		for _, role := range []string{render.RoleGateway, render.RoleCore} {
			waitDeployment(t, c, cc, role, func(d *appsv1.Deployment) error {
				if d.Spec.Template.Annotations[checksum] == was[role] {
					return fmt.Errorf("secret checksum unchanged: the pods keep the old key")
				}
				return nil
			})
		}
		now := sums()
		if now[render.RoleNotification] != was[render.RoleNotification] {
			t.Errorf("notification rolled although it does not read the signing key")
		}
		return now
	}

	rotatedAt := time.Now()
	if err := c.Delete(ctx, &old); err != nil {
		t.Fatal(err)
	}
	var rotated corev1.Secret
	eventually(t, "signing key regenerated", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, &rotated); err != nil {
			return false, err
		}
		return rotated.UID != old.UID, fmt.Errorf("still the deleted Secret")
	})
	if string(rotated.Data["signingKey"]) == string(old.Data["signingKey"]) || len(rotated.Data["signingKey"]) < 32 {
		t.Fatal("the regenerated Secret holds no new key")
	}
	if string(rotated.Data["previousSigningKey"]) != string(old.Data["signingKey"]) {
		t.Fatal("the deleted key is not kept as previousSigningKey: every session would have to sign in again")
	}
	expires, err := time.Parse(time.RFC3339, rotated.Annotations["chat.parley.dev/previous-signing-key-expires-at"])
	if err != nil {
		t.Fatalf("previous key expiry: %v", err)
	}
	if lo, hi := rotatedAt.Add(4*time.Second-time.Second), time.Now().Add(4*time.Second+time.Second); expires.Before(lo) || expires.After(hi) {
		t.Errorf("previous key expires at %s, want one token lifetime (4s) after the rotation at %s", expires, rotatedAt)
	}
	rolled := waitRolled(before)
	d := waitDeployment(t, c, cc, render.RoleGateway, func(*appsv1.Deployment) error { return nil })
	found := false
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "PARLEY_JWT_PREVIOUS_SIGNING_KEY" {
			ref := e.ValueFrom.SecretKeyRef
			found = ref.Name == "rotate-signing-key" && ref.Key == "previousSigningKey" && ptr.Deref(ref.Optional, false)
		}
	}
	if !found {
		t.Error("the gateway gets no optional PARLEY_JWT_PREVIOUS_SIGNING_KEY from the Secret")
	}

	// One token lifetime later the previous key is dropped and the pods roll again.
	eventually(t, "previous key dropped", func(ctx context.Context) (bool, error) {
		var s corev1.Secret
		if err := c.Get(ctx, key, &s); err != nil {
			return false, err
		}
		_, has := s.Data["previousSigningKey"]
		if !has && string(s.Data["signingKey"]) != string(rotated.Data["signingKey"]) {
			t.Fatal("dropping the previous key changed the current one")
		}
		return !has, fmt.Errorf("previousSigningKey still there")
	})
	waitRolled(rolled)
}

// TestReadyStaysTrueDuringRollout: a settings change rolls every workload; while the
// Deployments roll (maxUnavailable 0, every pod still available) the ChatCluster stays
// Ready and Progressing carries the rollout.
func TestReadyStaysTrueDuringRollout(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	cc := installed(t, c, externalCluster(ns, "serving"))
	for _, role := range render.Workloads {
		rollOut(t, c, waitDeployment(t, c, cc, role, func(*appsv1.Deployment) error { return nil }))
	}
	waitCondition(t, c, ns, "serving", chatv1alpha1.ConditionReady, metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	updateCluster(t, c, cc, func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Limits.MaxRoomMembers = 42 })
	got := waitCondition(t, c, ns, "serving", chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonRollingOut)
	if ready := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionReady); ready.Status != metav1.ConditionTrue {
		t.Fatalf("Ready is %s (%s: %s) during a rollout that keeps every pod available", ready.Status, ready.Reason, ready.Message)
	}
}

// TestKubectlGetColumns asks the API server for the table `kubectl get chat` prints.
func TestKubectlGetColumns(t *testing.T) {
	c := need(t)
	ns := namespace(t, c)
	installed(t, c, externalCluster(ns, "cols"))
	waitCondition(t, c, ns, "cols", chatv1alpha1.ConditionReady, metav1.ConditionFalse, chatv1alpha1.ReasonWorkloadsNotReady)

	cfg := rest.CopyConfig(env.Config)
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Status fills in over a few reconciles (conditions, then replica counts): poll the
	// table until the row settles, within a deadline.
	const want = "[cols False False 1.0.0 0/2]"
	var row string
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := rc.Get().AbsPath("/apis/chat.parley.dev/v1alpha1/namespaces", ns, "chatclusters").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
		if err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var table metav1.Table
		if err := json.Unmarshal(body, &table); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var names []string
		for _, col := range table.ColumnDefinitions {
			if col.Priority == 0 {
				names = append(names, col.Name)
			}
		}
		if want := []string{"Name", "Ready", "Degraded", "Version", "Gateway", "Age"}; !slices.Equal(names, want) {
			t.Fatalf("columns %v, want %v", names, want)
		}
		if len(table.Rows) != 1 {
			t.Fatalf("%d rows", len(table.Rows))
		}
		row = fmt.Sprint(table.Rows[0].Cells[:5])
		if row == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if row != want {
		t.Errorf("row %s, want %s", row, want)
	}
}
