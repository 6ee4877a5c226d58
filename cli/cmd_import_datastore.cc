// `pbskit import datastore SRC --store DST [--ns NS] [--link|--copy] [--no-verify]`: copies every
// namespace, group and snapshot of a datastore written by any PBS version into DST.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "output.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/importers/datastore_import.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct ImportDatastoreArgs {
  std::string source;
  std::string store;
  std::string ns;
  bool link = false;
  bool copy = false;
  bool no_verify = false;
  size_t read_threads = 1;
  size_t work_threads = 4;
  std::string owner = "root@pam";
};

boost::json::object ResultJson(const DatastoreImportResult& r) {
  boost::json::object j;
  j["namespaces"] = r.namespaces;
  j["groups"] = r.groups;
  j["snapshots"] = r.snapshots_total;
  j["snapshots-imported"] = r.snapshots_imported;
  j["snapshots-skipped"] = r.snapshots_skipped;
  j["snapshots-failed"] = r.snapshots_failed;
  j["snapshots-unfinished"] = r.snapshots_unfinished;
  j["chunks-linked"] = r.chunks_linked;
  j["chunks-reflinked"] = r.chunks_cloned;
  j["chunks-copied"] = r.chunks_copied;
  j["chunks-reused"] = r.chunks_reused;
  j["chunks-bad"] = r.chunks_bad;
  j["chunk-bytes"] = r.chunk_bytes;
  j["bytes-linked"] = r.bytes_linked;
  j["bytes-copied"] = r.bytes_copied;
  j["file-bytes"] = r.file_bytes;
  boost::json::array failures, bad;
  for (const auto& f : r.failures) failures.emplace_back(f);
  for (const auto& b : r.bad_chunks) bad.emplace_back(b);
  j["failures"] = std::move(failures);
  j["bad-chunks"] = std::move(bad);
  return j;
}

int RunImportDatastore(const GlobalOptions& g, const ImportDatastoreArgs& a) {
  if (a.link && a.copy) {
    return ReportError(Status::InvalidArgument("--link and --copy exclude each other"), 2);
  }
  if (a.read_threads < 1 || a.work_threads < 1) {
    return ReportError(Status::InvalidArgument("thread counts must be at least 1"), 2);
  }
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  auto source = OpenStoreArg(g, a.source);
  if (!source.ok()) return ReportStoreError(source.status().WithContext("source"));
  auto dest = OpenStoreArg(g, a.store);
  if (!dest.ok()) return ReportStoreError(dest.status());

  DatastoreImportOptions o;
  o.ns = *ns;
  o.transfer = a.link ? ChunkTransfer::kLink : a.copy ? ChunkTransfer::kCopy : ChunkTransfer::kAuto;
  o.verify_chunks = !a.no_verify;
  o.read_threads = a.read_threads;
  o.work_threads = a.work_threads;
  o.default_owner = a.owner;
  if (source->config) {
    if (const std::string* backend = source->config->Get("backend")) o.source_backend = *backend;
  }

  const bool text = g.output_format.empty() || g.output_format == "text";
  auto upid = NewUpid("import-datastore", dest->store->name(), "root@pam");
  if (!upid.ok()) return ReportError(upid.status(), 1);
  // Like verify: without a writable state dir the import still runs and prints its log.
  std::unique_ptr<TaskLog> task;
  std::unique_ptr<StreamTaskLogger> stream;
  std::ostringstream sink;
  std::ostream* echo = text ? &std::cout : &sink;
  auto started = TaskLog::Start(g.state_dir, *upid, TaskLogOptions{.echo = echo});
  if (started.ok()) {
    task = std::move(started).value();
    o.log = task.get();
  } else {
    std::cerr << "warning: no task log written (" << started.status().message() << ")\n";
    stream = std::make_unique<StreamTaskLogger>(echo);
    o.log = stream.get();
  }
  const bool tty = StderrIsTerminal();
  if (tty) {
    o.progress = [](const DatastoreImportProgress& p) {
      std::fprintf(stderr, "\r\033[Ksnapshots %llu/%llu, chunk data %s",
                   static_cast<unsigned long long>(p.snapshots_done),
                   static_cast<unsigned long long>(p.snapshots_total),
                   HumanBytes(p.chunk_bytes).c_str());
      std::fflush(stderr);
    };
  }

  // Crash tests: PBSKIT_FAULT_IMPORT="<point>:<n>" kills this process (SIGKILL) at the nth
  // time the import passes <point> (see DatastoreImportOptions::fault_point).
  if (const char* fault = std::getenv("PBSKIT_FAULT_IMPORT"); fault && *fault) {
    std::string spec(fault);
    auto colon = spec.rfind(':');
    std::string point = spec.substr(0, colon);
    long n = colon == std::string::npos ? 1 : std::atol(spec.c_str() + colon + 1);
    o.fault_point = [point, n, seen = 0L](std::string_view at) mutable {
      if (at == point && ++seen == n) ::kill(::getpid(), SIGKILL);
    };
  }
  auto r = ImportDatastore(source->store, dest->store, o);
  if (tty) std::fprintf(stderr, "\r\033[K");
  Status result = r.ok() ? Status::OK() : r.status();
  if (r.ok() && r->snapshots_failed > 0) {
    result = Status::Corruption(std::to_string(r->snapshots_failed) +
                                " snapshot(s) could not be imported");
  }
  TaskState state;
  state.kind = result.ok() ? TaskState::Kind::kOk : TaskState::Kind::kError;
  state.message = result.message();
  if (task) {
    auto finished = task->Finish(result);
    if (finished.ok()) state = *finished;
  }
  if (!r.ok()) {
    int code = r.status().code() == Code::kInvalidArgument ? 2 : 1;
    return ReportError(r.status(), code);
  }
  if (text) {
    std::cout << state.ResultLine() << std::endl;
  } else {
    PrintJson(std::cout, ResultJson(*r), g.output_format);
  }
  return r->snapshots_failed > 0 ? 1 : 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  CLI::App* imp = nullptr;
  try {
    imp = app.get_subcommand("import");
  } catch (const CLI::OptionNotFound&) {
    imp = app.add_subcommand("import", "Import backups made outside this datastore");
    imp->require_subcommand(1);
  }
  auto a = std::make_shared<ImportDatastoreArgs>();
  auto* sub = imp->add_subcommand(
      "datastore",
      "Import every namespace, group and snapshot of a datastore written by any PBS version "
      "(1.x-4.x), deduplicated, checking each chunk; resumable and idempotent");
  sub->add_option("SRC", a->source, "source datastore: a directory or a configured name")
      ->required();
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns)
      ->description("target namespace; the source's namespaces are created below it");
  auto* link = sub->add_flag("--link", a->link,
                             "hard-link chunks (source and destination on one filesystem)");
  auto* copy = sub->add_flag("--copy", a->copy, "always copy chunks (no links or reflinks)");
  link->excludes(copy);
  sub->add_flag("--no-verify", a->no_verify,
                "do not check chunks (CRC, digest, length) on the way");
  sub->add_option("--read-threads", a->read_threads, "chunk reader threads (default 1)");
  sub->add_option("--threads", a->work_threads, "chunk check/store threads (default 4)");
  sub->add_option("--owner", a->owner,
                  "owner for source groups without an owner file (default root@pam)");
  sub->callback([&g, a] { g.exit_code = RunImportDatastore(g, *a); });
}

}  // namespace
}  // namespace pbskit::cli

// After cli/cmd_import.cc (85), which creates the "import" command.
PBSKIT_REGISTER_COMMAND(86, pbskit::cli::Setup);
