// Package reconcile is the Database controller: get the Database, make sure
// its credentials exist, render its children, server-side apply each of them
// under one field manager, prune what is no longer rendered, and apply the
// status. Nothing is compared and updated: the API server's apply merges
// intent, and an apply that changes nothing writes nothing.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// +kubebuilder:rbac:groups=database.example.com,resources=databases,verbs=get;list;watch
// +kubebuilder:rbac:groups=database.example.com,resources=databases/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=prometheusrules,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler reconciles Databases.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server directly; used only for what the
	// label-filtered cache cannot see (a Secret the user created unlabelled).
	APIReader client.Reader
	// Recorder records Events on Databases.
	Recorder events.EventRecorder
	// Render holds the operator-wide render settings (exporter images).
	Render render.Options
	// Monitoring says which monitoring.coreos.com kinds are served; a
	// ServiceMonitor or PrometheusRule is only applied (and watched, and
	// pruned) when its kind is.
	Monitoring MonitoringAPIs
	// Now is the clock for condition transition times, TLS certificate
	// issuing and expiry; time.Now when nil.
	Now func() time.Time

	// echoes tells the watch events of the operator's own writes from
	// changes made by anyone else.
	echoes echoes
	// conflicts remembers other writers of the StatefulSets' fields, to
	// back off instead of fighting them.
	conflicts conflicts

	// unavailable remembers since when each Database's primary has been
	// unavailable, for the failover delay.
	unavailable unavailability

	// looks remembers the timed looks reconciles asked for, which an
	// early-ending reconcile must keep.
	looks lookAgain

	// announcedReady holds the UIDs of Databases whose first-Ready Event
	// this process recorded: the status read from the cache may not show
	// the operator's own Ready write yet when the next reconcile runs.
	announcedReady sync.Map
}

// SetupWithManager registers the controller: it watches Databases (spec,
// label and annotation changes; not its own status writes) and every kind
// it creates, and never requeues on a timer.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	toDatabase := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		key, ok := labelledDatabase(o)
		if !ok {
			return nil
		}
		return []ctrl.Request{{NamespacedName: key}}
	})
	// Every child watch notes its events, so that a reconcile caused only
	// by the echoes of the previous one's writes can end at once (echoes.go).
	owned := func(k ownedKind) builder.OwnsOption {
		return builder.WithPredicates(r.echoes.note(k.kind, true, controllingDatabase))
	}
	labelled := func(kind string, written bool) builder.WatchesOption {
		return builder.WithPredicates(r.echoes.note(kind, written, labelledDatabase))
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("database").
		For(&databasev1.Database{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.StatefulSet{}, owned(kindStatefulSet)).
		Owns(&corev1.Service{}, owned(kindService)).
		Owns(&corev1.ConfigMap{}, owned(kindConfigMap)).
		Owns(&batchv1.CronJob{}, owned(kindCronJob)).
		Owns(&policyv1.PodDisruptionBudget{}, owned(kindPodDisruptionBudget)).
		Owns(&networkingv1.NetworkPolicy{}, owned(kindNetworkPolicy)).
		Owns(&corev1.ServiceAccount{}, owned(kindServiceAccount)).
		Owns(&rbacv1.Role{}, owned(kindRole)).
		Owns(&rbacv1.RoleBinding{}, owned(kindRoleBinding)).
		// The autoscaler controller writes the HorizontalPodAutoscaler's
		// status at every sync; only changes to what the operator applies,
		// or its deletion, matter here.
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}, builder.WithPredicates(hpaChanged(),
			r.echoes.note(kindHorizontalPodAutoscaler.kind, true, controllingDatabase))).
		// Neither has an owner reference: both outlive the Database.
		Watches(&corev1.Secret{}, toDatabase, labelled("Secret", true)).
		Watches(&corev1.PersistentVolumeClaim{}, toDatabase, labelled("PersistentVolumeClaim", true)).
		// Backup Jobs belong to the CronJob; their outcome is BackupReady's.
		Watches(&batchv1.Job{}, toDatabase, labelled("Job", false)).
		// The database pods: their readiness, their agents' reports (the
		// primary's availability, the replicas' positions) and, while a
		// restore is in progress, pod 0's outcome. The operator writes
		// their role labels.
		Watches(&corev1.Pod{}, toDatabase, labelled("Pod", true))
	for _, gvk := range r.Monitoring.kinds() {
		b = b.Owns(unstructuredObject(gvk), owned(unstructuredKind(gvk)))
	}
	return b.Complete(r)
}

// hpaChanged passes every event but the updates of a HorizontalPodAutoscaler
// that leave its spec and metadata as they were: the autoscaler controller's
// status writes. (Its metadata.generation cannot tell: it only counts spec
// changes from Kubernetes 1.37, behind the HPAGeneration feature gate.)
func hpaChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldHPA, okOld := e.ObjectOld.(*autoscalingv2.HorizontalPodAutoscaler)
		newHPA, okNew := e.ObjectNew.(*autoscalingv2.HorizontalPodAutoscaler)
		if !okOld || !okNew {
			return true
		}
		return !equality.Semantic.DeepEqual(oldHPA.Spec, newHPA.Spec) ||
			!equality.Semantic.DeepEqual(oldHPA.Labels, newHPA.Labels) ||
			!equality.Semantic.DeepEqual(oldHPA.Annotations, newHPA.Annotations) ||
			!equality.Semantic.DeepEqual(oldHPA.OwnerReferences, newHPA.OwnerReferences) ||
			!oldHPA.DeletionTimestamp.Equal(newHPA.DeletionTimestamp)
	}}
}

// Reconcile brings one Database's children and status in line with its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var db databasev1.Database
	if err := r.Client.Get(ctx, req.NamespacedName, &db); err != nil {
		if apierrors.IsNotFound(err) {
			r.echoes.forget(req.NamespacedName)
			r.looks.set(req.NamespacedName, time.Time{})
		}
		// Gone: owner references let the garbage collector remove children.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if db.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	if result, skip := r.onlyEchoes(&db); skip {
		reconcileOutcomes.WithLabelValues(outcomeSuccess).Inc()
		return result, nil
	}
	degraded, retryAfter, err := r.reconcile(ctx, &db)
	if namespaceTerminating(err) {
		// Nothing can be created there any more, and the Database goes with
		// the namespace: not an error to retry.
		ctrl.LoggerFrom(ctx).V(1).Info("namespace is terminating; not reconciling", "namespace", db.Namespace)
		err = nil
	}
	r.echoes.end(&db, err)
	switch {
	case err != nil:
		reconcileOutcomes.WithLabelValues(outcomeError).Inc()
	case degraded:
		reconcileOutcomes.WithLabelValues(outcomeDegraded).Inc()
	default:
		reconcileOutcomes.WithLabelValues(outcomeSuccess).Inc()
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// Not a polling interval: the one moment an unavailable primary's
	// failover delay runs out, or a backed-off field conflict may be
	// taken back, when nothing else may happen to wake the reconciler.
	var at time.Time
	if retryAfter > 0 {
		at = r.now().Add(retryAfter)
	}
	r.looks.set(req.NamespacedName, at)
	return ctrl.Result{RequeueAfter: retryAfter}, nil
}

// onlyEchoes says the reconcile can end at once: only the previous
// reconcile's own writes came back, nothing changed, and no timed look it
// asked for is due. A pending timed look stays asked for in the result.
func (r *Reconciler) onlyEchoes(db *databasev1.Database) (ctrl.Result, bool) {
	left, due := r.looks.pending(client.ObjectKeyFromObject(db), r.now())
	if !r.echoes.begin(db) || due {
		return ctrl.Result{}, false
	}
	// Not polling: the timed look the last full reconcile asked for (a
	// failover delay or a switchover timeout), kept, never a new one.
	return ctrl.Result{RequeueAfter: left}, true
}

// reconcile does the work; it reports whether the Database is degraded,
// and when to look again if nothing happens before (a failover delay that
// runs out). Errors are transient and retried with backoff; problems a
// human must fix are reported in the status instead, and not retried.
func (r *Reconciler) reconcile(ctx context.Context, db *databasev1.Database) (bool, time.Duration, error) {
	o, err := r.reconcileChildren(ctx, db)
	if err != nil {
		return false, 0, err
	}
	var retryAfter time.Duration
	if o.primary != nil {
		retryAfter = o.primary.decision.retryAfter
	}
	if c := o.conflictRetry; c > 0 && (retryAfter == 0 || c < retryAfter) {
		retryAfter = c
	}
	return o.degraded != nil || o.primaryProblem() != nil, retryAfter, r.applyStatus(ctx, db, *o)
}

// reconcileChildren applies the children and the pods' roles and returns
// what it observed, for the status.
func (r *Reconciler) reconcileChildren(ctx context.Context, db *databasev1.Database) (*observed, error) {
	log := ctrl.LoggerFrom(ctx)
	var o observed

	created, problem, err := r.ensureCredentials(ctx, db)
	if err != nil {
		return nil, err
	}
	if created {
		r.event(db, corev1.EventTypeNormal, "CredentialsCreated", "Create",
			fmt.Sprintf("generated credentials in Secret %s", render.CredentialsSecretName(db.Name)))
	}
	o.degraded = problem
	tlsCertificate, tlsProblem, err := r.ensureTLS(ctx, db)
	if err != nil {
		return nil, err
	}
	if o.degraded == nil {
		o.degraded = tlsProblem
	}

	// What existed before this reconcile, for events, storage growth and
	// where a restore stands.
	current, err := r.getOptional(ctx, db, render.StatefulSetName(db.Name), &appsv1.StatefulSet{})
	if err != nil {
		return nil, err
	}
	var sts *appsv1.StatefulSet
	if current != nil {
		sts = current.(*appsv1.StatefulSet)
	}
	pod0, err := r.restoringPod(ctx, db)
	if err != nil {
		return nil, err
	}
	o.restore = decideRestore(db, sts, pod0)
	storeProblem, err := r.checkObjectStoreSecrets(ctx, db, o.restore.done())
	if err != nil {
		return nil, err
	}
	if o.degraded == nil {
		o.degraded = storeProblem
	}
	if o.restore.done() && !meta.IsStatusConditionTrue(db.Status.Conditions, databasev1.ConditionRestored) {
		r.event(db, corev1.EventTypeNormal, reasonRestoreSucceeded, "Restore", o.restore.message)
	}

	rendered, err := render.RenderObserved(db, r.Render, render.Observed{TLSCertificate: tlsCertificate, RestoreDone: o.restore.done(),
		KeepPods: keepPods(db)})
	if err != nil {
		o.degraded = &degradation{reason: "InvalidSpec", message: err.Error()}
		return &o, nil
	}
	o.serviceMonitorSkipped = rendered.ServiceMonitor != nil && !r.Monitoring.ServiceMonitors
	o.prometheusRuleSkipped = rendered.PrometheusRule != nil && !r.Monitoring.PrometheusRules

	// The primary role first: a failover or a switchover must not wait
	// for a dozen applies that change nothing. The status it may write
	// describes the StatefulSet as it was.
	o.statefulSet = sts
	if err := r.reconcilePrimary(ctx, db, &o); err != nil {
		return nil, err
	}

	hadCronJob, err := r.getOptional(ctx, db, render.BackupName(db.Name), &batchv1.CronJob{})
	if err != nil {
		return nil, err
	}

	resizing, problem, err := r.growStorage(ctx, db, sts)
	if err != nil {
		return nil, err
	}
	if problem != nil {
		o.degraded = problem
	}
	o.resizing = resizing

	list := children(rendered, r.Monitoring)
	if tlsProblem != nil || storeProblem != nil {
		// The configuration and the backup Job name the Secrets' keys too.
		list = withoutTLSDependents(list)
	}
	if err := r.applyChildren(ctx, db, list); err != nil {
		if !needsHuman(err) {
			return nil, err
		}
		o.degraded = &degradation{reason: "ApplyFailed", message: err.Error()}
	}
	conflict := conflictDecision{apply: true}
	if sts != nil && o.degraded == nil && !resizing {
		found, err := foreignOwners(sts.ManagedFields, rendered.StatefulSet)
		if err != nil {
			return nil, fmt.Errorf("managed fields of StatefulSet %s: %w", sts.Name, err)
		}
		conflict = r.conflicts.decide(sts.UID, found, r.now(), "StatefulSet "+sts.Name)
		o.conflictRetry = conflict.retryAfter
		if conflict.started {
			r.event(db, corev1.EventTypeWarning, conflict.problem.reason, "Apply", conflict.problem.message)
		}
	}
	if o.degraded == nil && !resizing && conflict.apply {
		how := apply
		if conflict.unforced {
			how = applyUnforced
		}
		if err := r.applyAs(ctx, db, kindStatefulSet.kind, *rendered.StatefulSet.Name, rendered.StatefulSet, how); conflict.unforced && apierrors.IsConflict(err) {
			// Taken again: the backoff goes on.
			if conflict.problem == nil {
				conflict.problem = unforcedConflictProblem("StatefulSet "+sts.Name, err, conflict.retryAfter)
			}
			o.statefulSet = sts
		} else if err != nil {
			if !needsHuman(err) {
				return nil, fmt.Errorf("apply StatefulSet %s: %w", *rendered.StatefulSet.Name, err)
			}
			o.degraded = &degradation{reason: "ApplyFailed", message: fmt.Sprintf("apply StatefulSet %s: %v", *rendered.StatefulSet.Name, err)}
		} else {
			// Apply wrote the server's answer, status included, into the
			// apply configuration: read it instead of asking again.
			o.statefulSet = &appsv1.StatefulSet{}
			if err := convert(rendered.StatefulSet, o.statefulSet); err != nil {
				return nil, err
			}
			if sts != nil && sts.Spec.Replicas != nil && *sts.Spec.Replicas != *o.statefulSet.Spec.Replicas {
				r.event(db, corev1.EventTypeNormal, "Scaled", "Scale",
					fmt.Sprintf("StatefulSet %s scaled from %d to %d replicas", sts.Name, *sts.Spec.Replicas, *o.statefulSet.Spec.Replicas))
			}
			if conflict.unforced {
				// Nobody holds the fields any more: the fight is over.
				conflict.problem = nil
				o.conflictRetry = 0
			}
		}
	} else {
		o.statefulSet = sts
	}
	if o.degraded == nil {
		o.degraded = conflict.problem
	}

	if rendered.BackupCronJob != nil && o.degraded == nil {
		o.cronJob = &batchv1.CronJob{}
		if err := convert(rendered.BackupCronJob, o.cronJob); err != nil {
			return nil, err
		}
		if o.lastBackupJob, err = r.lastBackupJob(ctx, db); err != nil {
			return nil, err
		}
		if render.ArchivingOf(db) != nil {
			if o.backupRuns, err = r.backupRuns(ctx, db); err != nil {
				return nil, err
			}
			if rendered.RestoreCheckCronJob != nil {
				if o.checkRuns, err = r.restoreCheckRuns(ctx, db); err != nil {
					return nil, err
				}
			}
		}
		if hadCronJob == nil {
			r.event(db, corev1.EventTypeNormal, "BackupEnabled", "Schedule",
				backupEnabledMessage(db, o.cronJob.Spec.Schedule))
		}
	}

	if o.degraded == nil {
		keep := map[string]bool{kindStatefulSet.kind + "/" + *rendered.StatefulSet.Name: true}
		for _, ch := range list {
			keep[ch.kind+"/"+ch.name] = true
		}
		kinds := []ownedKind{kindStatefulSet, kindService, kindConfigMap, kindPodDisruptionBudget, kindCronJob,
			kindHorizontalPodAutoscaler, kindNetworkPolicy, kindServiceAccount, kindRole, kindRoleBinding}
		for _, gvk := range r.Monitoring.kinds() {
			kinds = append(kinds, unstructuredKind(gvk))
		}
		pruned, err := prune(ctx, r.Client, db, kinds, keep)
		for _, p := range pruned {
			log.Info("pruned child", "kind", p.kind, "name", p.name)
			if p.kind == kindCronJob.kind {
				r.event(db, corev1.EventTypeNormal, "BackupDisabled", "Unschedule",
					fmt.Sprintf("backup schedule removed; PVC %s and its dumps are kept", render.BackupName(db.Name)))
			}
		}
		if err != nil {
			return nil, err
		}
	}

	return &o, nil
}

// reconcilePrimary decides who holds the primary role and labels the pods
// to match. A move of the role is written to the status first.
func (r *Reconciler) reconcilePrimary(ctx context.Context, db *databasev1.Database, o *observed) error {
	count := int32(1)
	if db.Spec.Replicas != nil {
		count = *db.Spec.Replicas
	}
	out, err := r.decidePrimaryRole(ctx, db, o.statefulSet, render.RunsUnderAgent(db), count)
	if err != nil {
		return err
	}
	o.primary = out
	d := out.decision
	// A move of the role (or a switchover's start or end) is written
	// before any label moves, so a reconcile interrupted halfway resumes
	// from the decision. The first primary of a new Database moves from
	// nobody: the final status write records it.
	moved := db.Status.CurrentPrimary != "" && d.primary != "" && d.primary != db.Status.CurrentPrimary
	if moved || d.change != nil || (d.switchover == nil) != (db.Status.Switchover == nil) {
		if err := r.applyStatus(ctx, db, *o); err != nil {
			return err
		}
		r.recordPrimaryEvents(ctx, db, d)
	} else if d.refusedSwitchover != "" {
		r.recordPrimaryEvents(ctx, db, d)
	}
	if err := r.applyRoles(ctx, db, out); err != nil {
		return err
	}
	if d.switchoverDone && db.Annotations[databasev1.SwitchoverAnnotation] != "" {
		if err := r.removeSwitchoverAnnotation(ctx, db); err != nil {
			return err
		}
	}
	// One restart at a time, and none while the role moves.
	if pod := out.rollout.deletePod; pod != "" && d.change == nil && d.switchover == nil && db.Status.Switchover == nil {
		// A restart that fails is retried at the next pod event, not with
		// the reconcile's back-off: that would delay a failover too.
		if err := r.restartOutdated(ctx, db, pod); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "rollout: restarting a pod failed", "pod", pod)
			r.event(db, corev1.EventTypeWarning, "RollingUpdateFailed", "Restart", err.Error())
		}
	}
	return nil
}

// applyStatus computes the status and applies it when it differs from the
// current one, so an unchanged Database causes no write.
func (r *Reconciler) applyStatus(ctx context.Context, db *databasev1.Database, o observed) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	status := computeStatus(db, o, metav1.NewTime(now().Truncate(time.Second)))
	if equality.Semantic.DeepEqual(status, db.Status) {
		return nil
	}
	if err := applyStatus(ctx, r.Client, statusApplyConfiguration(db, status)); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	before := db.Status
	db.Status = status

	became := func(typ string, s metav1.ConditionStatus) bool {
		return meta.IsStatusConditionPresentAndEqual(status.Conditions, typ, s) &&
			!meta.IsStatusConditionPresentAndEqual(before.Conditions, typ, s)
	}
	if firstReady(before, status) {
		if _, seen := r.announcedReady.LoadOrStore(db.UID, true); !seen {
			r.event(db, corev1.EventTypeNormal, "Ready", "Ready", fmt.Sprintf("all %d replicas are ready", status.Replicas))
		}
	}
	if became(databasev1.ConditionDegraded, metav1.ConditionTrue) {
		c := meta.FindStatusCondition(status.Conditions, databasev1.ConditionDegraded)
		r.event(db, corev1.EventTypeWarning, c.Reason, "Degrade", c.Message)
		ctrl.LoggerFrom(ctx).Info("database degraded", "reason", c.Reason, "message", c.Message)
	}
	return nil
}

// lastBackupJob returns the most recently created Job of db's backup
// CronJob, from the cache; nil when there is none.
func (r *Reconciler) lastBackupJob(ctx context.Context, db *databasev1.Database) (*batchv1.Job, error) {
	var jobs batchv1.JobList
	if err := r.Client.List(ctx, &jobs, client.InNamespace(db.Namespace), client.MatchingLabels{
		render.LabelInstance:  db.Name,
		render.LabelManagedBy: FieldManager,
		render.LabelComponent: "backup",
	}); err != nil {
		return nil, fmt.Errorf("list backup Jobs: %w", err)
	}
	var last *batchv1.Job
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if last == nil || last.CreationTimestamp.Before(&j.CreationTimestamp) ||
			(last.CreationTimestamp.Equal(&j.CreationTimestamp) && last.Name < j.Name) {
			last = j
		}
	}
	return last, nil
}

// getOptional reads a child from the cache; nil when it does not exist.
func (r *Reconciler) getOptional(ctx context.Context, db *databasev1.Database, name string, obj client.Object) (client.Object, error) {
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: db.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %T %s: %w", obj, name, err)
	}
	return obj, nil
}

// event records an Event on the Database. Notes never carry secret values.
func (r *Reconciler) event(db *databasev1.Database, eventType, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(db, nil, eventType, reason, action, "%s", note)
	}
}

// namespaceTerminating reports an API server's refusal to create an object
// in a namespace that is being deleted.
func namespaceTerminating(err error) bool {
	return err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// needsHuman tells problems a retry cannot fix (the API server refused the
// object, or the operator may not do it) from transient ones.
func needsHuman(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || namespaceTerminating(err) {
		return false
	}
	return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsUnauthorized(err)
}

// convert copies an applied apply configuration, holding the server's
// answer, into the typed object.
func convert(ac any, out any) error {
	raw, err := json.Marshal(ac)
	if err != nil {
		return fmt.Errorf("read applied %T: %w", ac, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("read applied %T: %w", ac, err)
	}
	return nil
}
