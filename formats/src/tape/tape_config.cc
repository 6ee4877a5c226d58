// tape.cfg, media-pool.cfg, tape-job.cfg, `mtx status` and LTO density codes (tape_config.h).
#include "pbskit/formats/tape/tape_config.h"

#include <charconv>
#include <map>
#include <set>

#include "pbskit/formats/names.h"

namespace pbskit::tape {
namespace {

Status Bad(const SectionConfigEntry& e, std::string_view key, const std::string& file,
           const std::string& what) {
  return Status::InvalidArgument(file + ":" + std::to_string(e.LineOf(key)) + ": " + what);
}

// Checks that every key of `e` is in `allowed` and non-array keys appear once.
Status CheckKeys(const SectionConfigEntry& e, const std::set<std::string>& allowed,
                 const std::set<std::string>& arrays, const std::string& file) {
  std::set<std::string> seen;
  for (size_t i = 0; i < e.properties.size(); ++i) {
    const auto& key = e.properties[i].first;
    int line = i < e.property_lines.size() ? e.property_lines[i] : e.line;
    if (allowed.count(key) == 0) {
      return Status::InvalidArgument(file + ":" + std::to_string(line) + ": " + e.type + " '" +
                                     e.id + "': unknown property '" + key + "'");
    }
    if (arrays.count(key) == 0 && !seen.insert(key).second) {
      return Status::InvalidArgument(file + ":" + std::to_string(line) + ": " + e.type + " '" +
                                     e.id + "': duplicate property '" + key + "'");
    }
  }
  return Status::OK();
}

Result<std::string> Required(const SectionConfigEntry& e, const char* key,
                             const std::string& file) {
  const std::string* v = e.Get(key);
  if (v == nullptr) {
    return Bad(e, key, file, e.type + " '" + e.id + "': missing property '" + key + "'");
  }
  return *v;
}

std::optional<std::string> Opt(const SectionConfigEntry& e, const char* key) {
  const std::string* v = e.Get(key);
  return v ? std::optional<std::string>(*v) : std::nullopt;
}

Result<std::optional<uint64_t>> OptU64(const SectionConfigEntry& e, const char* key,
                                       const std::string& file) {
  const std::string* v = e.Get(key);
  if (v == nullptr) return std::optional<uint64_t>();
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size()) {
    return Bad(e, key, file,
               "property '" + std::string(key) + "': expected an integer, got '" + *v + "'");
  }
  return std::optional<uint64_t>(n);
}

Result<std::optional<bool>> OptBool(const SectionConfigEntry& e, const char* key,
                                    const std::string& file) {
  const std::string* v = e.Get(key);
  if (v == nullptr) return std::optional<bool>();
  if (*v == "1" || *v == "true" || *v == "yes" || *v == "on") return std::optional<bool>(true);
  if (*v == "0" || *v == "false" || *v == "no" || *v == "off") return std::optional<bool>(false);
  return Bad(e, key, file, "property '" + std::string(key) + "': expected a boolean");
}

Status CheckName(const SectionConfigEntry& e, const std::string& file) {
  if (!IsSafeId(e.id) || e.id.size() < 3 || e.id.size() > 32) {
    return Status::InvalidArgument(file + ":" + std::to_string(e.line) + ": invalid " + e.type +
                                   " name '" + e.id + "' (3 to 32 characters, PROXMOX_SAFE_ID)");
  }
  return Status::OK();
}

void SetOpt(SectionConfigEntry* e, const char* key, const std::optional<std::string>& v) {
  if (v) e->Set(key, *v);
}

}  // namespace

// ---------------------------------------------------------------- tape.cfg

Result<TapeDriveConfigFile> TapeDriveConfigFile::Parse(std::string_view text,
                                                       const std::string& file) {
  PBSKIT_ASSIGN_OR_RETURN(auto cfg, SectionConfig::Parse(text, file));
  TapeDriveConfigFile out;
  std::set<std::string> names;
  for (const auto& e : cfg.sections) {
    PBSKIT_RETURN_IF_ERROR(CheckName(e, file));
    if (!names.insert(e.id).second) {
      return Status::InvalidArgument(file + ":" + std::to_string(e.line) + ": duplicate name '" +
                                     e.id + "'");
    }
    if (e.type == "virtual") {
      PBSKIT_RETURN_IF_ERROR(CheckKeys(e, {"path", "max-size"}, {}, file));
      VirtualDriveConfig d;
      d.name = e.id;
      PBSKIT_ASSIGN_OR_RETURN(d.path, Required(e, "path", file));
      PBSKIT_ASSIGN_OR_RETURN(d.max_size, OptU64(e, "max-size", file));
      out.virtual_drives.push_back(std::move(d));
    } else if (e.type == "lto") {
      PBSKIT_RETURN_IF_ERROR(CheckKeys(e, {"path", "changer", "changer-drivenum"}, {}, file));
      LtoDriveConfig d;
      d.name = e.id;
      PBSKIT_ASSIGN_OR_RETURN(d.path, Required(e, "path", file));
      d.changer = Opt(e, "changer");
      PBSKIT_ASSIGN_OR_RETURN(d.changer_drivenum, OptU64(e, "changer-drivenum", file));
      out.lto_drives.push_back(std::move(d));
    } else if (e.type == "changer") {
      PBSKIT_RETURN_IF_ERROR(
          CheckKeys(e, {"path", "export-slots", "eject-before-unload"}, {}, file));
      ChangerConfig c;
      c.name = e.id;
      PBSKIT_ASSIGN_OR_RETURN(c.path, Required(e, "path", file));
      c.export_slots = Opt(e, "export-slots");
      PBSKIT_ASSIGN_OR_RETURN(c.eject_before_unload, OptBool(e, "eject-before-unload", file));
      out.changers.push_back(std::move(c));
    } else {
      return Status::InvalidArgument(file + ":" + std::to_string(e.line) +
                                     ": unknown section type '" + e.type + "'");
    }
  }
  return out;
}

std::string TapeDriveConfigFile::ToString() const {
  SectionConfig cfg;
  for (const auto& d : virtual_drives) {
    SectionConfigEntry e{"virtual", d.name, {}, {}, 0};
    e.Set("path", d.path);
    if (d.max_size) e.Set("max-size", std::to_string(*d.max_size));
    cfg.sections.push_back(std::move(e));
  }
  for (const auto& d : lto_drives) {
    SectionConfigEntry e{"lto", d.name, {}, {}, 0};
    e.Set("path", d.path);
    SetOpt(&e, "changer", d.changer);
    if (d.changer_drivenum) e.Set("changer-drivenum", std::to_string(*d.changer_drivenum));
    cfg.sections.push_back(std::move(e));
  }
  for (const auto& c : changers) {
    SectionConfigEntry e{"changer", c.name, {}, {}, 0};
    e.Set("path", c.path);
    SetOpt(&e, "export-slots", c.export_slots);
    if (c.eject_before_unload) e.Set("eject-before-unload", *c.eject_before_unload ? "1" : "0");
    cfg.sections.push_back(std::move(e));
  }
  return cfg.ToString();
}

const VirtualDriveConfig* TapeDriveConfigFile::FindVirtual(std::string_view name) const {
  for (const auto& d : virtual_drives) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

bool TapeDriveConfigFile::HasName(std::string_view name) const {
  for (const auto& d : virtual_drives) {
    if (d.name == name) return true;
  }
  for (const auto& d : lto_drives) {
    if (d.name == name) return true;
  }
  for (const auto& c : changers) {
    if (c.name == name) return true;
  }
  return false;
}

// ---------------------------------------------------------------- media-pool.cfg

Result<MediaPoolConfigFile> MediaPoolConfigFile::Parse(std::string_view text,
                                                       const std::string& file) {
  PBSKIT_ASSIGN_OR_RETURN(auto cfg, SectionConfig::Parse(text, file));
  MediaPoolConfigFile out;
  std::set<std::string> names;
  for (const auto& e : cfg.sections) {
    if (e.type != "pool") {
      return Status::InvalidArgument(file + ":" + std::to_string(e.line) +
                                     ": unknown section type '" + e.type + "'");
    }
    PBSKIT_RETURN_IF_ERROR(CheckName(e, file));
    if (!names.insert(e.id).second) {
      return Status::InvalidArgument(file + ":" + std::to_string(e.line) + ": duplicate pool '" +
                                     e.id + "'");
    }
    PBSKIT_RETURN_IF_ERROR(
        CheckKeys(e, {"allocation", "retention", "template", "encrypt", "comment"}, {}, file));
    MediaPoolConfig p;
    p.name = e.id;
    p.allocation = Opt(e, "allocation");
    p.retention = Opt(e, "retention");
    p.template_ = Opt(e, "template");
    p.encrypt = Opt(e, "encrypt");
    p.comment = Opt(e, "comment");
    out.pools.push_back(std::move(p));
  }
  return out;
}

std::string MediaPoolConfigFile::ToString() const {
  SectionConfig cfg;
  for (const auto& p : pools) {
    SectionConfigEntry e{"pool", p.name, {}, {}, 0};
    SetOpt(&e, "allocation", p.allocation);
    SetOpt(&e, "retention", p.retention);
    SetOpt(&e, "template", p.template_);
    SetOpt(&e, "encrypt", p.encrypt);
    SetOpt(&e, "comment", p.comment);
    cfg.sections.push_back(std::move(e));
  }
  return cfg.ToString();
}

const MediaPoolConfig* MediaPoolConfigFile::Find(std::string_view name) const {
  for (const auto& p : pools) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// ---------------------------------------------------------------- tape-job.cfg

Result<TapeJobConfigFile> TapeJobConfigFile::Parse(std::string_view text, const std::string& file) {
  PBSKIT_ASSIGN_OR_RETURN(auto cfg, SectionConfig::Parse(text, file));
  TapeJobConfigFile out;
  for (const auto& e : cfg.sections) {
    if (e.type != "backup") {
      return Status::InvalidArgument(file + ":" + std::to_string(e.line) +
                                     ": unknown section type '" + e.type + "'");
    }
    PBSKIT_RETURN_IF_ERROR(
        CheckKeys(e,
                  {"store", "pool", "drive", "ns", "max-depth", "group-filter", "schedule",
                   "eject-media", "export-media-set", "latest-only", "notify-user",
                   "notification-mode", "worker-threads", "comment"},
                  {"group-filter"}, file));
    TapeBackupJobConfig j;
    j.id = e.id;
    PBSKIT_ASSIGN_OR_RETURN(j.store, Required(e, "store", file));
    PBSKIT_ASSIGN_OR_RETURN(j.pool, Required(e, "pool", file));
    PBSKIT_ASSIGN_OR_RETURN(j.drive, Required(e, "drive", file));
    j.ns = Opt(e, "ns");
    PBSKIT_ASSIGN_OR_RETURN(j.max_depth, OptU64(e, "max-depth", file));
    j.group_filter = e.GetAll("group-filter");
    j.schedule = Opt(e, "schedule");
    PBSKIT_ASSIGN_OR_RETURN(j.eject_media, OptBool(e, "eject-media", file));
    PBSKIT_ASSIGN_OR_RETURN(j.export_media_set, OptBool(e, "export-media-set", file));
    PBSKIT_ASSIGN_OR_RETURN(j.latest_only, OptBool(e, "latest-only", file));
    j.notify_user = Opt(e, "notify-user");
    j.notification_mode = Opt(e, "notification-mode");
    PBSKIT_ASSIGN_OR_RETURN(j.worker_threads, OptU64(e, "worker-threads", file));
    j.comment = Opt(e, "comment");
    out.jobs.push_back(std::move(j));
  }
  return out;
}

Result<uint64_t> ParseTapeSize(std::string_view text) {
  auto bad = Status::InvalidArgument("invalid size '" + std::string(text) + "'");
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return bad;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc()) return bad;
  std::string unit(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"B", 1},
                                                         {"K", 1ull << 10},
                                                         {"M", 1ull << 20},
                                                         {"G", 1ull << 30},
                                                         {"T", 1ull << 40},
                                                         {"KiB", 1ull << 10},
                                                         {"MiB", 1ull << 20},
                                                         {"GiB", 1ull << 30},
                                                         {"TiB", 1ull << 40},
                                                         {"KB", 1000ull},
                                                         {"MB", 1000000ull},
                                                         {"GB", 1000000000ull},
                                                         {"TB", 1000000000000ull}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return bad;
  if (n > UINT64_MAX / it->second) return bad;
  return n * it->second;
}

// ---------------------------------------------------------------- mtx status

namespace {

struct Lines {
  std::vector<std::string_view> lines;
  size_t pos = 0;
};

bool ParseU64(std::string_view s, uint64_t* out, size_t* used) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, *out);
  *used = i;
  return ec == std::errc();
}

std::string_view Tag(std::string_view s) {
  size_t e = 0;
  while (e < s.size() && s[e] != ' ' && s[e] != ':') ++e;
  return s.substr(0, e);
}

}  // namespace

Result<MtxStatus> ParseMtxStatus(std::string_view text) {
  Lines in;
  size_t start = 0;
  while (start < text.size()) {
    size_t e = text.find('\n', start);
    if (e == std::string_view::npos) {
      in.lines.push_back(text.substr(start));
      break;
    }
    in.lines.push_back(text.substr(start, e - start));
    start = e + 1;
  }
  auto fail = [&](const std::string& what) {
    return Status::InvalidArgument("unable to parse mtx status - " + what + " at line " +
                                   std::to_string(in.pos + 1));
  };
  auto strip = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
  };
  if (in.lines.empty() || strip(in.lines[0]).rfind("Storage Changer", 0) != 0) {
    return fail("expected 'Storage Changer'");
  }
  in.pos = 1;
  MtxStatus out;
  const std::string_view kDrive = "Data Transfer Element";
  while (in.pos < in.lines.size() && in.lines[in.pos].rfind(kDrive, 0) == 0) {
    std::string_view l = strip(in.lines[in.pos].substr(kDrive.size()));
    MtxDriveStatus d;
    size_t used = 0;
    if (!ParseU64(l, &d.element_address, &used) || used >= l.size() || l[used] != ':') {
      return fail("bad drive element number");
    }
    if (d.element_address != out.drives.size()) return fail("unexpected drive number");
    l.remove_prefix(used + 1);
    if (l.rfind("Empty", 0) == 0) {
      d.status.kind = MtxElementStatus::Kind::kEmpty;
    } else if (l.rfind("Full (", 0) == 0) {
      l.remove_prefix(6);
      const std::string_view kSe = "Storage Element ";
      if (l.rfind(kSe, 0) == 0) {
        l.remove_prefix(kSe.size());
        uint64_t slot = 0;
        if (!ParseU64(l, &slot, &used)) return fail("bad loaded slot number");
        l.remove_prefix(used);
        if (l.rfind(" Loaded", 0) != 0) return fail("expected ' Loaded'");
        l.remove_prefix(7);
        d.loaded_slot = slot;
      } else {
        size_t close = l.find(')');
        if (close == std::string_view::npos) return fail("expected ')'");
        l.remove_prefix(close);
      }
      if (l.empty() || l[0] != ')') return fail("expected ')'");
      l.remove_prefix(1);
      const std::string_view kVt = ":VolumeTag = ";
      if (l.rfind(kVt, 0) == 0) {
        d.status.kind = MtxElementStatus::Kind::kVolumeTag;
        d.status.volume_tag = std::string(Tag(l.substr(kVt.size())));
      } else {
        d.status.kind = MtxElementStatus::Kind::kFull;
      }
    } else {
      return fail("unexpected drive status");
    }
    out.drives.push_back(std::move(d));
    ++in.pos;
  }
  const std::string_view kSlot = "Storage Element";
  while (in.pos < in.lines.size()) {
    std::string_view raw = in.lines[in.pos];
    std::string_view l = strip(raw);
    if (l.size() == raw.size() || l.rfind(kSlot, 0) != 0) break;
    l = strip(l.substr(kSlot.size()));
    MtxSlotStatus s;
    size_t used = 0;
    if (!ParseU64(l, &s.element_address, &used)) return fail("bad storage element number");
    if (s.element_address != out.slots.size() + 1) return fail("unexpected slot number");
    l.remove_prefix(used);
    if (l.rfind(" IMPORT/EXPORT", 0) == 0) {
      s.import_export = true;
      l.remove_prefix(14);
    }
    if (l.empty() || l[0] != ':') return fail("expected ':'");
    l.remove_prefix(1);
    if (l.rfind("Empty", 0) == 0) {
      s.status.kind = MtxElementStatus::Kind::kEmpty;
    } else if (l.rfind("Full ", 0) == 0) {
      l.remove_prefix(5);
      if (l.rfind(":VolumeTag=", 0) == 0) {
        s.status.kind = MtxElementStatus::Kind::kVolumeTag;
        s.status.volume_tag = std::string(Tag(l.substr(11)));
      } else {
        s.status.kind = MtxElementStatus::Kind::kFull;
      }
    } else {
      return fail("unexptected element status");
    }
    out.slots.push_back(std::move(s));
    ++in.pos;
  }
  // Only an empty last line may remain.
  while (in.pos < in.lines.size() && strip(in.lines[in.pos]).empty()) ++in.pos;
  if (in.pos != in.lines.size()) return fail("unexpected trailing data");
  return out;
}

// ---------------------------------------------------------------- density codes

const std::vector<TapeDensity>& LtoDensityTable() {
  static const std::vector<TapeDensity> kTable = {
      {0x58, "LTO-5", 1500000000000ull},  {0x5a, "LTO-6", 2500000000000ull},
      {0x5c, "LTO-7", 6000000000000ull},  {0x5d, "LTO-7 M8", 9000000000000ull},
      {0x5e, "LTO-8", 12000000000000ull}, {0x60, "LTO-9", 18000000000000ull},
  };
  return kTable;
}

std::optional<std::string> DensityName(uint8_t code) {
  for (const auto& d : LtoDensityTable()) {
    if (d.code == code) return std::string(d.name);
  }
  return std::nullopt;
}

}  // namespace pbskit::tape
