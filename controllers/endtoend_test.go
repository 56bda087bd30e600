package controllers_test

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
	"github.com/parleychat/parley/internal/chatclient"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/testenv/kube"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/webpush"
)

// TestOperatorEndToEnd runs what the operator rendered: a ChatCluster on the simulated
// cluster, then its migration Job's container and its gateway, core and notification
// pods, read back from the API server, as local parley processes with exactly the
// containers' command, args and environment (Secrets and ConfigMaps resolved from the
// API server; see podrun_test.go for the only translations). They must all reach
// /readyz, and a message sent through them must arrive: any setting the renderer names
// differently from the roles' flags fails here, either because a role refuses to start
// or because the variable is read by no flag (checked explicitly, since a role ignores
// unknown variables).
func TestOperatorEndToEnd(t *testing.T) {
	need(t)
	pg := testenv.Postgres(t)
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	built := make(chan string, 1)
	go func() {
		// Compiling takes longest on a loaded machine: overlap it with the cluster.
		defer close(built)
		parleyOnce.Do(buildParleyOnce)
		built <- parleyBin
	}()
	c := startSimulated(t, 0)
	fakeNode(t, c)
	ctx := context.Background()

	// The dependencies, as a user would point at in-cluster ones: by Service name. Each
	// Service is backed by the test's own database, Redis database and Kafka broker.
	ns := "e2e-" + strings.ToLower(time.Now().UTC().Format("150405"))
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	backends := map[string]string{"postgres": "127.0.0.1:5432", "redis": rdb.Addr, "kafka": brokers[0]}
	for name, port := range e2eServices {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: name, Port: port, TargetPort: intstr.FromInt32(port)}}},
		}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	secrets := e2eSecrets(t, ns, pg, rdb.DB)
	for name, data := range secrets {
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}); err != nil {
			t.Fatal(err)
		}
	}

	cc := e2eCluster(ns)
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	ready := waitSim(t, c, ns, cc.Name, metav1.ConditionTrue, chatv1alpha1.ReasonAllReady)
	t.Logf("ChatCluster Ready: gateway %s, core %s, notification %s", ready.Status.Gateway.Ready, ready.Status.Core.Ready, ready.Status.Notification.Ready)

	bin, ok := <-built
	if !ok || bin == "" {
		t.Fatal(parleyErr)
	}
	var job batchv1.Job
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.MigrationJobName(cc, render.TargetImage(cc, operatorImage))}, &job); err != nil {
		t.Fatalf("migration job: %v", err)
	}
	// kwok "completed" the Job's pod without running anything: its container runs here.
	jobPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: job.Name + "-local"}, Spec: job.Spec.Template.Spec}
	pods := map[string]*corev1.Pod{}
	for _, role := range render.Workloads {
		pods[role] = runningPod(t, c, cc, role)
	}
	serveAndChat(t, c, bin, backends, cc, jobPod, pods)
}

// serveAndChat runs the migration pod to completion, then the workloads' pods, waits for
// their /readyz, and sends a message from one user to another through them. backends
// maps the Service names the pods' settings use to the test's loopback addresses.
func serveAndChat(t *testing.T, c client.Reader, bin string, backends map[string]string, cc *chatv1alpha1.ChatCluster, jobPod *corev1.Pod, pods map[string]*corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	ns := cc.Namespace
	lb := loopback{services: map[string]string{}, dir: t.TempDir()}
	for name, addr := range backends {
		lb.services[name] = addr
	}
	for _, role := range render.Workloads {
		lb.services[render.WorkloadName(cc, role)] = freeLoopback(t)
	}
	// Core refuses a schema that is behind: the migration runs first, to completion.
	migrate := runPod(t, c, bin, lb, jobPod, "", render.RoleMigrate)
	select {
	case <-migrate.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("parley migrate did not finish:\n%s", migrate.out.tail(30))
	}
	if migrate.err != nil {
		t.Fatalf("parley migrate: %v\n%s", migrate.err, migrate.out.tail(30))
	}

	procs := map[string]*process{}
	for _, role := range render.Workloads {
		procs[role] = runPod(t, c, bin, lb, pods[role], lb.services[render.WorkloadName(cc, role)], role)
	}
	for _, role := range render.Workloads {
		waitReady(t, procs[role], 2*time.Minute)
	}
	// The settings ConfigMap goes to every role: each key must be read by one of them.
	var settings corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.SettingsName(cc)}, &settings); err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, role := range append([]string{render.RoleMigrate}, render.Workloads...) {
		for name := range roleEnv(t, bin, role) {
			read[name] = true
		}
	}
	for key := range settings.Data {
		if !read[key] {
			t.Errorf("settings key %s is read by no role", key)
		}
	}

	// A message through them: accounts over core's REST, WebSockets on the gateway, the
	// message through Kafka to core and back through notification.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	api := chatclient.New("http://" + procs[render.RoleCore].addr)
	alice, err := api.Register(ctx, "alice", "correct horse battery staple")
	if err != nil {
		t.Fatalf("register alice: %v", err)
	}
	bob, err := api.Register(ctx, "bob", "correct horse battery staple")
	if err != nil {
		t.Fatalf("register bob: %v", err)
	}
	room, err := api.OpenDirect(ctx, alice, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	gw := "ws://" + procs[render.RoleGateway].addr
	aliceWS, err := chatclient.Dial(ctx, gw, alice.Token)
	if err != nil {
		t.Fatalf("alice dial: %v", err)
	}
	defer aliceWS.Close()
	bobWS, err := chatclient.Dial(ctx, gw, bob.Token)
	if err != nil {
		t.Fatalf("bob dial: %v", err)
	}
	defer bobWS.Close()
	if err := aliceWS.Send(protocol.ClientFrame{Type: protocol.FrameSend, ID: "e2e-1", Room: room, Body: "hello through the operator's pods"}); err != nil {
		t.Fatal(err)
	}
	ack, err := aliceWS.Next(ctx, func(f protocol.ServerFrame) bool { return f.Type == protocol.FrameAck && f.ID == "e2e-1" })
	if err != nil {
		t.Fatalf("alice's ack: %v", err)
	}
	got, err := bobWS.Next(ctx, chatclient.Is(protocol.FrameMessage))
	if err != nil {
		t.Fatalf("bob's message: %v", err)
	}
	if got.Body != "hello through the operator's pods" || got.Sender != alice.ID || got.MessageID != ack.MessageID {
		t.Fatalf("bob got %+v, ack %+v", got, ack)
	}
}

// e2eCluster is the ChatCluster the end-to-end tests run: external PostgreSQL and Redis
// from Secrets pg and redis, Kafka by Service name, Web Push, an Ingress with trusted
// proxies, one pod per workload. Named "parley", its Services (parley-core, ...) put
// PARLEY_* service links into every pod's environment, as kubelet does.
func e2eCluster(ns string) *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "parley"},
		Spec: chatv1alpha1.ChatClusterSpec{
			Version:      "1.0.0",
			LogLevel:     "debug",
			Gateway:      chatv1alpha1.WorkloadSpec{Replicas: ptr.To[int32](1)},
			Core:         chatv1alpha1.WorkloadSpec{Replicas: ptr.To[int32](1)},
			Postgres:     chatv1alpha1.PostgresSpec{External: &chatv1alpha1.ExternalPostgres{URLSecret: chatv1alpha1.SecretKeyRef{Name: "pg", Key: "url"}}},
			Redis:        chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedis{URLSecret: chatv1alpha1.SecretKeyRef{Name: "redis", Key: "url"}}},
			Kafka:        chatv1alpha1.KafkaSpec{External: &chatv1alpha1.ExternalKafka{BootstrapServers: []string{"kafka." + ns + ".svc:9092"}}},
			Notification: chatv1alpha1.NotificationSpec{WorkloadSpec: chatv1alpha1.WorkloadSpec{Replicas: ptr.To[int32](1)}, WebPush: &chatv1alpha1.WebPushSpec{VAPIDKeysSecret: "vapid", Subject: "mailto:ops@parley.test"}},
			Ingress:      &chatv1alpha1.IngressSpec{Host: "chat.parley.test", TrustedProxies: []string{"10.0.0.0/8"}},
		},
	}
}

// e2eSecrets are the Secrets e2eCluster names: database and Redis URLs by Service name.
func e2eSecrets(t *testing.T, ns string, pg string, redisDB int) map[string]map[string]string {
	t.Helper()
	pgURL, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	pgURL.Host = "postgres." + ns + ".svc:5432"
	vapidPublic, vapidPrivate, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]map[string]string{
		"pg":    {"url": pgURL.String()},
		"redis": {"url": fmt.Sprintf("redis://redis.%s.svc:6379/%d", ns, redisDB)},
		"vapid": {"publicKey": vapidPublic, "privateKey": vapidPrivate},
	}
}

// e2eServices are the Services of the dependencies, by name and port.
var e2eServices = map[string]int32{"postgres": 5432, "redis": 6379, "kafka": 9092}

// runningPod waits for the workload's pod to run on the simulated node and returns it
// as the API server has it.
func runningPod(t *testing.T, c client.Client, cc *chatv1alpha1.ChatCluster, role string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	err := kube.Eventually(context.Background(), simWait, func(ctx context.Context) (bool, error) {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: render.WorkloadName(cc, role)}, &d); err != nil {
			return false, err
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(cc.Namespace), client.MatchingLabels(render.WorkloadLabels(cc, role))); err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil &&
				p.Annotations[render.AnnotationConfigChecksum] == d.Spec.Template.Annotations[render.AnnotationConfigChecksum] {
				pod = p
				return true, nil
			}
		}
		return false, fmt.Errorf("no running %s pod of the current template among %d", role, len(pods.Items))
	})
	if err != nil {
		t.Fatalf("%s pod: %v", role, err)
	}
	return &pod
}

// runPod starts the pod's only Parley container as a process after checking that every
// PARLEY_* variable it is given is one the role reads.
func runPod(t *testing.T, c client.Reader, bin string, lb loopback, pod *corev1.Pod, self, role string) *process {
	t.Helper()
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", pod.Name, len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	env, err := resolveEnv(context.Background(), c, pod, ctr)
	if err != nil {
		t.Fatalf("%s: %v", pod.Name, err)
	}
	if problems := envMismatches(roleEnv(t, bin, role), env); len(problems) > 0 {
		t.Errorf("%s (%s): environment and flags disagree:\n  %s", pod.Name, role, strings.Join(problems, "\n  "))
	}
	procEnv, err := lb.translate(pod, ctr, env, self)
	if err != nil {
		t.Fatalf("%s: %v", pod.Name, err)
	}
	argv := command(bin, ctr, procEnv)
	if len(argv) < 2 || argv[1] != role {
		t.Fatalf("%s runs %q, want role %s", pod.Name, argv[1:], role)
	}
	return startProcess(t, pod.Name, self, argv, procEnv)
}

// envMismatches lists the variables a container is given for nothing: a PARLEY_* name
// its own env sets that the role has no flag for, and a service link (kubelet's
// NAME_SERVICE_HOST and friends) that a flag would read by accident. The settings
// ConfigMap is shared by every role, so its keys need only be read by some role
// (settingsReadBySome).
func envMismatches(flags map[string]bool, env resolvedEnv) []string {
	var out []string
	for name, source := range env.fromSpec {
		if source == "env" && strings.HasPrefix(name, "PARLEY_") && !flags[name] {
			out = append(out, fmt.Sprintf("%s is set by the pod's env but the role has no flag reading it", name))
		}
	}
	for name := range env.links {
		if flags[name] {
			out = append(out, fmt.Sprintf("%s is a service link kubelet adds, and the role reads it as a flag", name))
		}
	}
	sort.Strings(out)
	return out
}

// TestRenderedPodsServeMessages is TestOperatorEndToEnd without a control plane: the
// renderer's objects (settings, signing key, Services, pod templates) go into a fake
// client, and the pods run from it. It needs no envtest, so it runs wherever PostgreSQL
// and Redis do; the end-to-end test adds the API server's defaulting and the operator.
func TestRenderedPodsServeMessages(t *testing.T) {
	pg := testenv.Postgres(t)
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t)
	bin := parleyBinary(t)
	const ns = "rendered"
	cc := e2eCluster(ns)
	// The CRD's defaults, which the API server would have filled in.
	cc.Spec.Kafka.Partitions = 12
	cc.Spec.Auth.Registration, cc.Spec.Auth.TokenTTL = "open", "24h"
	cc.Spec.Limits.MaxMessageBytes, cc.Spec.Limits.MessagesPerSecond, cc.Spec.Limits.MaxRoomMembers = 16384, 10, 1000
	cc.Spec.Files.MaxUploadBytes = 26214400
	image := render.TargetImage(cc, operatorImage)
	signing := render.SigningKeySecret(cc, []byte(strings.Repeat("rendered-signing-key-", 3)))
	objs := []client.Object{render.Settings(cc), signing}
	for name, data := range e2eSecrets(t, ns, pg, rdb.DB) {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: bytesOf(data)})
	}
	ip := 10
	for name, port := range e2eServices {
		ip++
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.0.%d", ip), Ports: []corev1.ServicePort{{Name: name, Port: port}}},
		})
	}
	digests := map[string]string{signing.Name: render.SecretDigest(signing)}
	pods := map[string]*corev1.Pod{}
	for _, role := range render.Workloads {
		svc := render.Service(cc, role)
		ip++
		svc.Spec.ClusterIP = fmt.Sprintf("10.96.0.%d", ip)
		objs = append(objs, svc)
		tpl := render.Deployment(cc, role, image, render.Checksum(render.Settings(cc)), digests).Spec.Template
		pods[role] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.WorkloadName(cc, role) + "-0"}, Spec: tpl.Spec}
	}
	jobPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "migrate-0"}, Spec: render.MigrationJob(cc, image).Spec.Template.Spec}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	backends := map[string]string{"postgres": "127.0.0.1:5432", "redis": rdb.Addr, "kafka": brokers[0]}
	serveAndChat(t, c, bin, backends, cc, jobPod, pods)
}

func bytesOf(data map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(data))
	for k, v := range data {
		out[k] = []byte(v)
	}
	return out
}
