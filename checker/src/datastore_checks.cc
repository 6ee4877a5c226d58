// Datastore, job and remote checks pbs3to4 lacks (UPGRADE-CHECKS.md §10, FORMATS.md §8).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <algorithm>

#include "check_context.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/property_string.h"
#include "pbskit/formats/upid.h"

namespace pbskit::checker {
namespace {

struct Store {
  const SectionConfigEntry* cfg;
  std::string name;
  std::string path;  // host-absolute directory holding .chunks
  bool removable = false;
  bool s3 = false;
  std::string maintenance;  // type, "" when none
  std::string maintenance_message;
};

std::string NormalizePath(std::string p) {
  std::string out;
  for (char c : p) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  // Rounded down, so an amount just below a threshold never prints as the threshold itself.
  v = std::floor(v * 100) / 100;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

bool IsFat(const std::string& fstype) {
  return fstype == "vfat" || fstype == "msdos" || fstype == "exfat" || fstype == "fat" ||
         fstype == "umsdos";
}

std::vector<Store> LoadStores(CheckContext& ctx) {
  std::vector<Store> out;
  for (const auto* s : ctx.Config("datastore.cfg").OfType("datastore")) {
    Store st;
    st.cfg = s;
    st.name = s->id;
    const std::string* path = s->Get("path");
    st.removable = s->Get("backing-device") != nullptr;
    if (st.removable) {
      st.path = "/mnt/datastore/" + s->id;  // removable stores are bind-mounted here
    } else if (path) {
      st.path = NormalizePath(*path);
    }
    if (const std::string* b = s->Get("backend")) {
      auto kv = ParsePropertyString(*b, "type");
      if (kv.ok()) {
        const std::string* type = FindProperty(*kv, "type");
        st.s3 = type && *type == "s3";
      }
    }
    if (const std::string* m = s->Get("maintenance-mode")) {
      auto kv = ParsePropertyString(*m, "type");
      if (kv.ok()) {
        if (const std::string* t = FindProperty(*kv, "type")) st.maintenance = *t;
        if (const std::string* msg = FindProperty(*kv, "message")) {
          st.maintenance_message = PercentDecode(*msg);
        }
      }
    }
    out.push_back(std::move(st));
  }
  return out;
}

// Returns true if the store's directory looks like an openable datastore.
bool CheckExists(CheckContext& ctx, const Store& s) {
  const std::string check = "datastore-exists";
  std::string who = "datastore '" + s.name + "' (" + s.path + ")";
  if (s.path.empty()) {
    ctx.report.Fail(check, "datastore '" + s.name + "' has no 'path' in datastore.cfg");
    return false;
  }
  if (!ctx.host.IsDir(s.path) || !ctx.host.IsDir(s.path + "/.chunks")) {
    if (s.removable) {
      ctx.report.Notice(check, "removable " + who + " is not mounted, its contents are not "
                               "checked");
      return false;
    }
    if (!ctx.host.IsDir(s.path)) {
      ctx.report.Fail(check, who + " does not exist or is not mounted");
    } else {
      ctx.report.Fail(check, who + " cannot be opened: no chunk store (" + s.path +
                                 "/.chunks missing)");
    }
    return false;
  }
  // PBS creates all 65536 prefix directories when it creates the store and never creates
  // them on insert; spot-check a few (copies made with tools that drop empty directories
  // lose them).
  for (const char* prefix : {"0000", "7fff", "ffff"}) {
    if (!ctx.host.IsDir(s.path + "/.chunks/" + prefix)) {
      ctx.report.Warn(check, who + " has an incomplete chunk store (" + s.path + "/.chunks/" +
                                 prefix + " missing): new chunks with missing prefixes cannot "
                                 "be stored");
      break;
    }
  }
  // The datastore engine's own open (reads only).
  auto opened = DataStore::Open(ctx.host.Local(s.path), s.name);
  if (!opened.ok()) {
    ctx.report.Fail(check, who + " cannot be opened: " + opened.status().message());
    return false;
  }
  if (!ctx.host.Exists(s.path + "/.lock")) {
    ctx.report.Notice(check, who + " exists, but has no '.lock' file yet (PBS creates it on "
                             "first use; it must be writable by the backup user)");
    return true;
  }
  ctx.report.Pass(check, who + " exists and opens");
  return true;
}

void CheckMaintenance(CheckContext& ctx, const Store& s) {
  if (s.maintenance.empty()) return;
  std::string msg = s.maintenance_message.empty() ? "" : " ('" + s.maintenance_message + "')";
  if (s.maintenance == "delete") {
    ctx.report.Warn("datastore-maintenance",
                    "datastore '" + s.name + "' is in maintenance mode 'delete'" + msg +
                        ": finish removing it before the upgrade");
  } else if (s.maintenance == "unmount" && s.removable) {
    ctx.report.Notice("datastore-maintenance",
                      "removable datastore '" + s.name + "' is being unmounted" + msg);
  } else {
    ctx.report.Notice("datastore-maintenance", "datastore '" + s.name + "' is in maintenance mode '" +
                                                   s.maintenance + "'" + msg);
  }
}

void ProbeAtime(CheckContext& ctx, const Store& s) {
  const std::string check = "datastore-atime";
  const std::string dir = ctx.host.Local(s.path);
  auto honoured = ctx.options.probe_atime ? ctx.options.probe_atime(dir) : ProbeAtimeUpdates(dir);
  if (!honoured.ok()) {
    if (honoured.status().code() == Code::kUnsupported) {
      ctx.report.Skip(check, "datastore '" + s.name + "': atime probe not possible (" +
                                 honoured.status().message() + ")");
    } else {
      ctx.report.Fail(check, "datastore '" + s.name + "': " + honoured.status().message());
    }
  } else if (!*honoured) {
    ctx.report.Fail(check, "datastore '" + s.name + "': the file system does not honour atime "
                           "updates; garbage collection (atime safety check) will fail");
  } else {
    ctx.report.Pass(check, "datastore '" + s.name + "': atime updates are honoured");
  }
}

// Sampled verify (`--verify-datastores`): every snapshot when sample_percent is 100, else an
// evenly spread share of each datastore's finished snapshots (at least one).
void VerifyDatastore(CheckContext& ctx, const Store& s) {
  const std::string check = "datastore-verify";
  auto store = DataStore::Open(ctx.host.Local(s.path), s.name);
  if (!store.ok()) return;  // reported by the existence check
  std::vector<std::pair<BackupNamespace, BackupDir>> snapshots;
  auto namespaces = (*store)->ListNamespaces(BackupNamespace(), true);
  if (!namespaces.ok()) {
    ctx.report.Fail(check, "datastore '" + s.name + "': " + namespaces.status().message());
    return;
  }
  for (const auto& ns : *namespaces) {
    auto groups = (*store)->ListGroups(ns);
    if (!groups.ok()) continue;
    for (const auto& g : *groups) {
      auto snaps = (*store)->ListSnapshots(ns, g);
      if (!snaps.ok()) continue;
      for (const auto& info : *snaps) {
        if (info.finished) snapshots.emplace_back(ns, info.dir);
      }
    }
  }
  if (snapshots.empty()) {
    ctx.report.Pass(check, "datastore '" + s.name + "': no snapshots to verify");
    return;
  }
  int pct = std::clamp(ctx.options.verify_sample_percent, 1, 100);
  Upid upid;
  upid.node = "localhost";
  upid.pid = static_cast<int32_t>(::getpid());
  upid.starttime = ::time(nullptr);
  upid.worker_type = "verify";
  upid.worker_id = s.name;
  upid.auth_id = "root@pam";
  MemoryTaskLogger log;
  VerifyWorker worker(*store, &log, upid.ToString(), VerifyOptions());
  size_t checked = 0;
  std::vector<std::string> failed;
  for (size_t i = 0; i < snapshots.size(); ++i) {
    bool take = (i + 1) * pct / 100 > i * pct / 100 || (i + 1 == snapshots.size() && checked == 0);
    if (!take) continue;
    ++checked;
    if (!worker.VerifySnapshot(snapshots[i].first, snapshots[i].second)) {
      failed.push_back(snapshots[i].second.ToString());
    }
  }
  std::string what = "verified " + std::to_string(checked) + " of " +
                     std::to_string(snapshots.size()) + " snapshot(s)";
  if (failed.empty()) {
    ctx.report.Pass(check, "datastore '" + s.name + "': " + what + ", all ok");
  } else {
    std::string list;
    for (const auto& f : failed) list += "\n      " + f;
    ctx.report.Fail(check, "datastore '" + s.name + "': " + what + ", " +
                               std::to_string(failed.size()) + " failed:" + list);
  }
}

void CheckFilesystem(CheckContext& ctx, const Store& s,
                     const Result<std::vector<MountEntry>>& mounts) {
  const std::string check = "datastore-filesystem";
  if (!mounts.ok()) {
    ctx.report.Skip(check, "datastore '" + s.name + "': file system unknown, /proc/mounts not "
                           "found");
    return;
  }
  auto m = Host::MountFor(*mounts, s.path);
  if (!m) {
    ctx.report.Skip(check, "datastore '" + s.name + "': no mount in /proc/mounts covers " + s.path);
    return;
  }
  std::string where = "'" + m->fstype + "' file system mounted at " + m->mount_point;
  if (IsFat(m->fstype)) {
    ctx.report.Fail(check, "datastore '" + s.name + "' is on a " + where +
                               ": FAT keeps only access dates, no owners or permissions, and "
                               "limits files to 4 GiB;\n      a datastore needs a POSIX file "
                               "system (ext4, xfs, zfs, ...)");
    return;
  }
  const std::string* tuning = s.cfg->Get("tuning");
  bool safety_check = true;
  if (tuning) {
    auto kv = ParsePropertyString(*tuning);
    if (kv.ok()) {
      if (const std::string* v = FindProperty(*kv, "gc-atime-safety-check")) {
        safety_check = !(*v == "0" || *v == "false" || *v == "no" || *v == "off");
      }
    }
  }
  if (m->HasOption("noatime")) {
    ctx.report.Notice(
        check, "datastore '" + s.name + "' is on a " + where + " with 'noatime':\n      "
               "garbage collection marks chunks by setting their atime explicitly, which "
               "noatime does not suppress,\n      but " +
                   std::string(safety_check ? "the GC atime safety check verifies it"
                                            : "the GC atime safety check is disabled") +
                   (ctx.host.live() || ctx.options.probe_atime
                        ? ""
                        : "; the atime probe runs only on the live system"));
  } else {
    ctx.report.Pass(check, "datastore '" + s.name + "' is on a " + where);
  }
  if (!safety_check) {
    ctx.report.Notice(check, "datastore '" + s.name + "': tuning 'gc-atime-safety-check' is "
                             "disabled, GC does not verify atime updates");
  }
}

void CheckFreeSpace(CheckContext& ctx, const Store& s) {
  auto space = ctx.Space(s.path);
  if (!space.ok()) {
    // A host tree has no free space to measure; the line for '/' already said so.
    if (space.status().code() != Code::kUnsupported) {
      ctx.report.Skip("free-space", "datastore '" + s.name + "': free space unknown: " +
                                        space.status().message());
    }
    return;
  }
  uint64_t pct = space->total ? space->available * 100 / space->total : 0;
  std::string text = HumanBytes(space->available) + " of " + HumanBytes(space->total) +
                     " free (" + std::to_string(pct) + "%)";
  if (space->available < ctx.options.min_free_datastore ||
      pct < static_cast<uint64_t>(ctx.options.min_free_datastore_percent)) {
    ctx.report.Warn("free-space", "datastore '" + s.name + "': only " + text);
  } else {
    ctx.report.Pass("free-space", "datastore '" + s.name + "': " + text);
  }
}

void CheckNested(CheckContext& ctx, const std::vector<Store>& stores) {
  bool any = false;
  for (const auto& inner : stores) {
    for (const auto& outer : stores) {
      if (&inner == &outer || inner.path.empty() || outer.path.empty()) continue;
      if (inner.removable != outer.removable) continue;
      const std::string& o = outer.path;
      bool nested = o == "/" || (inner.path.size() > o.size() &&
                                 inner.path.compare(0, o.size(), o) == 0 &&
                                 inner.path[o.size()] == '/');
      if (inner.path == o) {
        if (&inner < &outer) {
          ctx.report.Fail("datastore-nested", "datastores '" + inner.name + "' and '" +
                                                  outer.name + "' share the path " + o);
          any = true;
        }
        continue;
      }
      if (!nested) continue;
      ctx.report.Fail("datastore-nested",
                      "datastore '" + inner.name + "' (" + inner.path +
                          ") is nested inside datastore '" + outer.name + "' (" + o +
                          ");\n      garbage collection refuses to run on nested datastores");
      any = true;
    }
  }
  if (!any && stores.size() > 1) {
    ctx.report.Pass("datastore-nested", "no nested datastores");
  }
}

void CheckNotificationMode(CheckContext& ctx, const std::string& file, const std::string& type,
                           const std::string& what) {
  const SectionConfig& cfg = ctx.Config(file);
  bool broken = !ctx.config_errors[file].empty();
  for (const auto* s : cfg.OfType(type)) {
    const std::string* mode = s->Get("notification-mode");
    std::string who = what + " '" + s->id + "'";
    if (!mode) {
      if (ctx.upgraded) continue;  // 4.x default: notification-system
      if (broken) {
        ctx.report.Warn("notification-mode",
                        who + " has no 'notification-mode' and /etc/proxmox-backup/" + file +
                            " does not parse:\n      the upgrade cannot pin 'legacy-sendmail', "
                            "so notifications silently switch to the notification system");
      } else {
        ctx.report.Notice("notification-mode",
                          who + " relies on the 3.x default 'legacy-sendmail' notifications;\n"
                          "      4.x defaults to 'notification-system', the upgrade pins "
                          "'legacy-sendmail' explicitly");
      }
    } else if (*mode == "legacy-sendmail") {
      ctx.report.Notice("notification-mode",
                        who + " still uses 'legacy-sendmail' notifications" +
                            (s->Get("notify-user") ? " (notify-user " + *s->Get("notify-user") + ")"
                                                   : "") +
                            ";\n      consider switching to 'notification-system' (targets and "
                            "matchers)");
    }
  }
}

// "3.2.4", "3.2-4", "3.2" -> {3,2,4}
bool ParseVersion(const std::string& v, int out[3]) {
  out[0] = out[1] = out[2] = 0;
  int idx = 0;
  size_t i = 0;
  while (i < v.size() && idx < 3) {
    if (!std::isdigit(static_cast<unsigned char>(v[i]))) return idx >= 2;
    int n = 0;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
      n = n * 10 + (v[i] - '0');
      if (n > 100000) return false;
      ++i;
    }
    out[idx++] = n;
    if (i < v.size() && (v[i] == '.' || v[i] == '-')) ++i;
  }
  return idx >= 2;
}

bool Older(const int v[3], int a, int b, int c) {
  if (v[0] != a) return v[0] < a;
  if (v[1] != b) return v[1] < b;
  return v[2] < c;
}

void CheckSyncJobs(CheckContext& ctx) {
  const SectionConfig& sync = ctx.Config("sync.cfg");
  const SectionConfig& remotes = ctx.Config("remote.cfg");
  for (const auto* job : sync.OfType("sync")) {
    const std::string* remote_name = job->Get("remote");
    if (!remote_name) continue;  // local sync
    const std::string check = "sync-remote-version";
    bool push = job->Get("sync-direction") && *job->Get("sync-direction") == "push";
    std::string who = std::string(push ? "push" : "pull") + " sync job '" + job->id +
                      "' (remote '" + *remote_name + "')";
    const SectionConfigEntry* remote = remotes.Find("remote", *remote_name);
    if (!remote) {
      ctx.report.Fail(check, who + ": remote '" + *remote_name + "' is not in remote.cfg");
      continue;
    }
    std::string version;
    auto given = ctx.options.remote_versions.find(*remote_name);
    if (given != ctx.options.remote_versions.end()) {
      version = given->second;
    } else if (ctx.options.query_remote_version) {
      auto r = ctx.options.query_remote_version(*remote);
      if (!r.ok()) {
        ctx.report.Warn(check, who + ": unable to query the remote's version: " +
                                   r.status().message());
        continue;
      }
      version = *r;
    } else {
      ctx.report.Skip(check, who + ": remote version unknown (give --remote-version " +
                                 *remote_name + "=<version>)");
      continue;
    }
    int v[3];
    if (!ParseVersion(version, v)) {
      ctx.report.Warn(check, who + ": cannot parse remote version '" + version + "'");
      continue;
    }
    std::string vs = std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]);
    if (push && Older(v, 2, 2, 0)) {
      ctx.report.Fail(check, who + ": remote runs " + vs +
                                 ", push sync needs a remote API >= 2.2.0");
    } else if (!push && Older(v, 2, 2, 0) && (job->Get("remote-ns") || job->Get("ns"))) {
      ctx.report.Fail(check, who + ": remote runs " + vs +
                                 ", which has no namespaces (needs >= 2.2.0), but the job uses "
                                 "them");
    } else if (push && Older(v, 3, 2, 11) && job->Get("remove-vanished") &&
               (*job->Get("remove-vanished") == "true" || *job->Get("remove-vanished") == "1")) {
      ctx.report.Warn(check, who + ": remote runs " + vs +
                                 ", older than 3.2.11: remove-vanished cannot skip protected "
                                 "snapshots or report delete statistics");
    } else {
      ctx.report.Pass(check, who + ": remote runs " + vs);
    }
  }
}

void CheckTapeJobsOnS3(CheckContext& ctx, const std::vector<Store>& stores) {
  for (const auto* job : ctx.Config("tape-job.cfg").OfType("backup")) {
    const std::string* store = job->Get("store");
    if (!store) continue;
    for (const auto& s : stores) {
      if (s.name == *store && s.s3) {
        ctx.report.Fail("tape-s3", "tape backup job '" + job->id + "' reads datastore '" +
                                       s.name + "', which uses the S3 backend: direct s3/tape "
                                       "operations are not supported");
      }
    }
  }
}

}  // namespace

Result<bool> ProbeAtimeUpdates(const std::string& dir) {
  std::string probe = dir + "/.pbskit-atime-probe." + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unsupported(probe + ": " + std::strerror(errno));
  struct timespec old_times[2] = {{::time(nullptr) - 2 * 86400, 0}, {0, UTIME_OMIT}};
  struct timespec now_times[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  struct stat before {}, after {};
  bool ok = ::futimens(fd, old_times) == 0 && ::fstat(fd, &before) == 0 &&
            ::futimens(fd, now_times) == 0 && ::fstat(fd, &after) == 0;
  int err = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok) return Status::IoError("atime update on " + probe + " failed: " + std::strerror(err));
  return after.st_atim.tv_sec > before.st_atim.tv_sec;
}

Status CheckDatastores(CheckContext& ctx) {
  ctx.report.Info("datastores", "Checking datastores..");
  // E4: daemons still on pre-3.3.5 locking.
  const std::string marker = "/run/proxmox-backup/old-locking";
  if (ctx.host.Exists(marker)) {
    ctx.report.Warn("old-locking", marker + " exists: the daemons still use the locking of "
                                            "PBS < 3.3.5, reboot before upgrading");
  } else if (!ctx.host.live() && !ctx.host.IsDir("/run/proxmox-backup")) {
    ctx.report.Skip("old-locking", "old-locking marker unknown: /run/proxmox-backup not found "
                                   "in the host tree");
  } else {
    ctx.report.Pass("old-locking", "daemons use the current locking (no " + marker + ")");
  }
  // E6: unfinished tasks.
  const std::string active = "/var/log/proxmox-backup/tasks/active";
  if (auto text = ctx.host.ReadFile(active); text.ok()) {
    std::vector<std::string> types;
    size_t pos = 0;
    while (pos < text->size()) {
      size_t nl = text->find('\n', pos);
      std::string line = text->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text->size() : nl + 1;
      if (line.rfind("UPID:", 0) != 0) continue;
      // UPID:node:pid:pstart:task_id:starttime:worker_type:worker_id:auth_id:
      size_t p = 0;
      for (int i = 0; i < 6 && p != std::string::npos; ++i) p = line.find(':', p + 1);
      if (p == std::string::npos) continue;
      size_t e = line.find(':', p + 1);
      types.push_back(line.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1));
    }
    if (types.empty()) {
      ctx.report.Pass("running-tasks", "no running tasks");
    } else {
      std::string list;
      for (const auto& t : types) list += (list.empty() ? "" : ", ") + t;
      ctx.report.Warn("running-tasks", std::to_string(types.size()) + " task(s) still running (" +
                                           list + "), wait for them before upgrading");
    }
  } else {
    ctx.report.Skip("running-tasks", "running tasks unknown: " + active + " not found");
  }
  // E7: free space on /.
  if (auto root = ctx.Space("/"); root.ok()) {
    std::string text = HumanBytes(root->available) + " free on '/'";
    if (root->available < ctx.options.min_free_root) {
      ctx.report.Warn("free-space", "only " + text + ", the upgrade needs at least " +
                                        HumanBytes(ctx.options.min_free_root));
    } else {
      ctx.report.Pass("free-space", text);
    }
  } else if (root.status().code() == Code::kUnsupported) {
    ctx.report.Skip("free-space", "free space of '/' and the datastores is not measured for a "
                                  "host tree");
  } else {
    ctx.report.Skip("free-space", "free space of '/' unknown: " + root.status().message());
  }

  std::vector<Store> stores = LoadStores(ctx);
  if (stores.empty()) {
    ctx.report.Skip("datastore-exists", "no datastores configured in "
                                        "/etc/proxmox-backup/datastore.cfg");
    return Status::OK();
  }
  auto mounts = ctx.host.Mounts();
  for (const auto& s : stores) {
    CheckMaintenance(ctx, s);
    if (s.maintenance == "delete") continue;  // half-removed on purpose
    if (!CheckExists(ctx, s)) continue;
    CheckFilesystem(ctx, s, mounts);
    if (ctx.ProbesAtime()) ProbeAtime(ctx, s);
    CheckFreeSpace(ctx, s);
    if (ctx.options.verify_sample_percent > 0) VerifyDatastore(ctx, s);
  }
  CheckNested(ctx, stores);
  return Status::OK();
}

Status CheckJobsAndRemotes(CheckContext& ctx) {
  ctx.report.Info("jobs", "Checking notification settings, tape and sync jobs..");
  CheckNotificationMode(ctx, "datastore.cfg", "datastore", "datastore");
  CheckNotificationMode(ctx, "tape-job.cfg", "backup", "tape backup job");
  CheckTapeJobsOnS3(ctx, LoadStores(ctx));
  CheckSyncJobs(ctx);
  return Status::OK();
}

}  // namespace pbskit::checker
