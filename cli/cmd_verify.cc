// `pbskit verify --store S [--ns NS] [GROUP|SNAPSHOT] ...`: a verify task with PBS semantics and
// PBS task-log wording; the log is printed and kept under <state-dir>/tasks like a PBS worker
// task. Exit status 1 when anything failed to verify.
#include <iostream>
#include <memory>
#include <optional>

#include "output.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct VerifyArgs {
  std::string store;
  std::string ns;
  std::string target;
  size_t read_threads = 1;
  size_t verify_threads = 4;
  bool ignore_verified = false;
  std::optional<int64_t> outdated_after;
  std::string owner = "root@pam";
};

int RunVerify(GlobalOptions& g, const VerifyArgs& a) {
  VerifyTarget target;
  if (a.target.empty()) {
    auto ns = ParseNamespaceArg(a.ns);
    if (!ns.ok()) return ReportError(ns.status(), 2);
    target.ns = *ns;
  } else {
    auto r = ParseGroupOrSnapshotArg(a.ns, a.target);
    if (!r.ok()) return ReportError(r.status(), 2);
    target.ns = r->first.ns;
    target.group = r->first.group;
    target.backup_time = r->second;
  }
  if (a.outdated_after && !a.ignore_verified)
    return ReportError(Status::InvalidArgument("--outdated-after requires --ignore-verified"), 2);
  if (a.read_threads < 1 || a.verify_threads < 1)
    return ReportError(Status::InvalidArgument("thread counts must be at least 1"), 2);

  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());

  VerifyOptions options;
  options.read_threads = a.read_threads;
  options.verify_threads = a.verify_threads;
  options.ignore_verified = a.ignore_verified;
  options.outdated_after_days = a.outdated_after;
  if (opened->config) {
    auto tuning = opened->config->tuning();
    if (!tuning.ok()) return ReportError(tuning.status(), 2);
    options.inode_order = tuning->InodeChunkOrder();
  }

  auto [worker_type, worker_id] = VerifyWorkerTypeAndId(opened->store->name(), target);
  auto upid = NewUpid(worker_type, worker_id, a.owner);
  if (!upid.ok()) return ReportError(upid.status(), 1);

  // The task log lives in the state dir; if it cannot be created the verify still runs and
  // prints its log (a read-only environment must not prevent checking a datastore).
  std::unique_ptr<TaskLog> task;
  std::unique_ptr<StreamTaskLogger> stream;
  TaskLogger* log = nullptr;
  auto started = TaskLog::Start(g.state_dir, *upid, TaskLogOptions{.echo = &std::cout});
  if (started.ok()) {
    task = std::move(started).value();
    log = task.get();
  } else {
    std::cerr << "warning: no task log written (" << started.status().message() << ")\n";
    stream = std::make_unique<StreamTaskLogger>(&std::cout);
    log = stream.get();
  }

  Status result = RunVerifyTask(opened->store, target, options, upid->ToString(), log);
  if (result.IsNotFound()) {
    if (task) (void)task->Finish(result);
    return ReportError(result, 2);
  }
  TaskState state;
  state.kind = result.ok() ? TaskState::Kind::kOk : TaskState::Kind::kError;
  state.message = result.message();
  if (task) {
    auto finished = task->Finish(result);
    if (finished.ok()) state = *finished;
  }
  std::cout << state.ResultLine() << std::endl;
  return result.ok() ? 0 : 1;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<VerifyArgs>();
  auto* sub = app.add_subcommand(
      "verify",
      "verify snapshots: manifest and index checksums, every chunk's CRC, digest and size");
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns)
      ->description("namespace (a/b form); default: the whole datastore, every namespace");
  sub->add_option("TARGET", a->target,
                  "a group (vm/100) or snapshot (vm/100/2024-05-01T10:00:00Z); default: all");
  sub->add_option("--read-threads", a->read_threads, "chunk reader threads (default 1)");
  sub->add_option("--verify-threads", a->verify_threads, "chunk verify threads (default 4)");
  sub->add_flag("--ignore-verified", a->ignore_verified,
                "skip snapshots that were verified before (see --outdated-after)");
  sub->add_option("--outdated-after", a->outdated_after,
                  "with --ignore-verified: re-verify snapshots verified more than DAYS ago");
  sub->callback([&g, a] { g.exit_code = RunVerify(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(52, Setup);

}  // namespace pbskit::cli
