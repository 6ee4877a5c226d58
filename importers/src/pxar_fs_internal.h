// Shared pieces of the pxar file-system walker and extractor (private to importers/).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "pbskit/formats/pxar/format.h"
#include "pbskit/formats/status.h"

namespace pbskit::importers {

// POSIX ACL xattr tags (linux/posix_acl_xattr.h).
inline constexpr uint16_t kAclTagUserObj = 0x01;
inline constexpr uint16_t kAclTagUser = 0x02;
inline constexpr uint16_t kAclTagGroupObj = 0x04;
inline constexpr uint16_t kAclTagGroup = 0x08;
inline constexpr uint16_t kAclTagMask = 0x10;
inline constexpr uint16_t kAclTagOther = 0x20;

// chattr (FS_*_FL) bits and the pxar flag each maps to, as PBS maps them.
inline constexpr std::pair<uint64_t, long> kChattrMap[] = {
    {pxar::kFlagAppend, 0x00000020},    {pxar::kFlagNoatime, 0x00000080},
    {pxar::kFlagCompr, 0x00000004},     {pxar::kFlagNocow, 0x00800000},
    {pxar::kFlagNodump, 0x00000040},    {pxar::kFlagDirsync, 0x00010000},
    {pxar::kFlagImmutable, 0x00000010}, {pxar::kFlagSync, 0x00000008},
    {pxar::kFlagNocomp, 0x00000400},    {pxar::kFlagProjinherit, 0x20000000},
};

uint64_t ChattrToPxarFlags(long attr);
long PxarFlagsToChattr(uint64_t flags);
bool QuotaFs(int64_t magic);
Status ParseAclXattr(const std::string& value, bool is_default, pxar::Acl* acl);

}  // namespace pbskit::importers
