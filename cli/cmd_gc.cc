// `pbskit gc --store S`: garbage collection of a datastore with PBS semantics, run as a
// "garbage_collection" worker task whose log is printed and kept under <state-dir>/tasks.
// With --output-format json[-pretty] the log goes only to the task file and the resulting
// .gc-status object is printed instead.
#include <filesystem>
#include <iostream>
#include <memory>

#include "output.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/task_log.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct GcArgs {
  std::string store;
  std::string owner = "root@pam";
};

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// PBS lookup_datastore(Operation::Write): any maintenance mode refuses writers.
Status CheckWritable(const OpenedStore& opened) {
  if (!opened.config) return Status::OK();
  auto mode = opened.config->maintenance_mode();
  if (!mode.ok()) return mode.status();
  if (!*mode) return Status::OK();
  const MaintenanceMode& m = **mode;
  std::string why;
  std::string msg = PercentDecode(m.message.value_or(""));
  if (m.type == "delete") why = "datastore is being deleted";
  else if (m.type == "unmount") why = "datastore is being unmounted";
  else if (m.type == "offline") why = "offline maintenance mode: " + msg;
  else if (m.type == "s3-refresh") why = "S3 refresh maintenance mode: " + msg;
  else why = "read-only maintenance mode: " + msg;
  return Status::Busy("datastore '" + opened.config->name + "' is unavailable: " + why);
}

// PBS ensure_not_nested: GC of a datastore lying inside another one (or containing one) would
// sweep chunks the other store references.
Status CheckNotNested(const GlobalOptions& g, const OpenedStore& opened) {
  if (!opened.config) return Status::OK();
  auto cfg = DatastoreConfig::Load(g.config_dir);
  if (!cfg.ok()) return cfg.status();
  namespace fs = std::filesystem;
  auto norm = [](const std::string& p) { return fs::weakly_canonical(fs::absolute(p)); };
  fs::path ours = norm(opened.config->path());
  for (const auto& e : cfg->entries()) {
    if (e.name == opened.config->name || e.path().empty()) continue;
    fs::path other = norm(e.path());
    auto starts_with = [](const fs::path& a, const fs::path& b) {
      auto ai = a.begin();
      for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
        if (ai == a.end() || *ai != *bi) return false;
      }
      return true;
    };
    if (starts_with(other, ours) || starts_with(ours, other)) {
      return Status::InvalidArgument("Aborting GC for safety reasons: nested datastores not "
                                     "allowed: '" + e.name + "' already in \"" +
                                     other.string() + "\"");
    }
  }
  return Status::OK();
}

int RunGc(GlobalOptions& g, const GcArgs& a) {
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  Status writable = CheckWritable(*opened);
  if (!writable.ok()) return ReportError(writable, 1);

  GcOptions options;
  if (opened->config) {
    auto tuning = opened->config->tuning();
    if (!tuning.ok()) return ReportError(tuning.status(), 2);
    options.atime_safety_check = tuning->EffectiveAtimeSafetyCheck();
    options.atime_cutoff_minutes = tuning->gc_atime_cutoff;
    if (tuning->gc_cache_capacity) {
      options.cache_capacity = static_cast<uint64_t>(*tuning->gc_cache_capacity);
    }
  }
  DataStore& store = *opened->store;
  auto upid = NewUpid("garbage_collection", store.name(), a.owner);
  if (!upid.ok()) return ReportError(upid.status(), 1);
  options.upid = upid->ToString();

  const bool text = g.output_format == "text";
  std::unique_ptr<TaskLog> task;
  std::unique_ptr<TaskLogger> fallback;
  TaskLogger* log = nullptr;
  auto started = TaskLog::Start(g.state_dir, *upid, TaskLogOptions{text ? &std::cout : nullptr});
  if (started.ok()) {
    task = std::move(started).value();
    log = task.get();
  } else {
    std::cerr << "warning: no task log written (" << started.status().message() << ")\n";
    if (text) {
      fallback = std::make_unique<StreamTaskLogger>(&std::cout);
    } else {
      fallback = std::make_unique<MemoryTaskLogger>();
    }
    log = fallback.get();
  }

  Status nested = CheckNotNested(g, *opened);
  Result<GarbageCollectionStatus> result =
      nested.ok() ? GarbageCollection(store, options, log) : Result<GarbageCollectionStatus>(nested);
  if (!nested.ok() && opened->config) {
    log->Info("Current datastore path: " + opened->config->path());
  }
  Status st = result.ok() ? Status::OK() : result.status();

  TaskState state;
  state.kind = st.ok() ? (log->warnings() ? TaskState::Kind::kWarnings : TaskState::Kind::kOk)
                       : TaskState::Kind::kError;
  state.warnings = log->warnings();
  state.message = st.message();
  if (task) {
    auto finished = task->Finish(st);
    if (finished.ok()) state = *finished;
  }
  if (text) {
    std::cout << state.ResultLine() << std::endl;
  } else if (result.ok()) {
    PrintJson(std::cout, boost::json::parse(result->ToJson()), g.output_format);
  }
  if (!st.ok()) {
    if (!text) std::cerr << "Error: " << st.message() << "\n";
    return 1;
  }
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<GcArgs>();
  auto* sub = app.add_subcommand(
      "gc",
      "garbage collection: remove chunks no index references any more (PBS semantics: atime "
      "safety check, 24 h 5 min cutoff or gc-atime-cutoff, .gc-status)");
  AddStoreOption(sub, &a->store);
  sub->callback([&g, a] { g.exit_code = RunGc(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(53, Setup);

}  // namespace pbskit::cli
