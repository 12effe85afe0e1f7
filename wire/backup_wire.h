// The backup library's values in wire form and back (README.md).
//
// Each pair converts every field; a missing sub-table (nullptr) converts to
// the default value. FromWire of a BackupResult maps an error code this build
// does not know to kInternal, so a newer peer cannot make an out-of-range
// StatusCode. Thread-safety: free functions.
#pragma once

#include <memory>
#include <vector>

#include "backup/backup_types.h"
#include "backup/snapshot_places.h"
#include "common/codec.h"

namespace ledgerkeep {

wire::BackupTargetT ToWire(const BackupTarget& t);
BackupTarget FromWire(const wire::BackupTargetT& t);
BackupTarget FromWire(const wire::BackupTarget* t);  // a command's table; nullptr = {}

wire::BackupResultT ToWire(const BackupResult& r);
BackupResult FromWire(const wire::BackupResultT& r);

wire::SnapshotInfoT ToWire(const SnapshotInfo& s);
SnapshotInfo FromWire(const wire::SnapshotInfoT& s);

wire::SnapshotVerificationT ToWire(const SnapshotVerification& v);
SnapshotVerification FromWire(const wire::SnapshotVerificationT& v);

wire::BackupVerifyResultT ToWire(const BackupVerifyResult& r);
BackupVerifyResult FromWire(const wire::BackupVerifyResultT& r);

wire::RestoreResultT ToWire(const RestoreResult& r);
RestoreResult FromWire(const wire::RestoreResultT& r);

// A node's snapshot places (SnapshotStatus.places, NodeInfo.backup_places):
// entries without a destination are skipped, only the first may be home.
std::vector<std::unique_ptr<wire::SnapshotPlaceT>> PlacesToWire(const SnapshotPlaces& places);
SnapshotPlaces PlacesFromWire(const std::vector<std::unique_ptr<wire::SnapshotPlaceT>>& places);

}  // namespace ledgerkeep

// The generated unions' Set() takes any type and makes the union NONE when
// the type is not one of its members, so handing it a plain value (say a
// BackupResult instead of ToWire(result)) would send an empty body. These
// specialisations have no enum_value: such a call does not compile.
#define LK_NOT_A_WIRE_BODY(T)                                \
  template <>                                                \
  struct BodyUnionTraits<T> {};                              \
  template <>                                                \
  struct CommandBodyUnionTraits<T> {};                       \
  template <>                                                \
  struct EventBodyUnionTraits<T> {};                         \
  template <>                                                \
  struct ReportBodyUnionTraits<T> {};                        \
  template <>                                                \
  struct ResultDetailUnionTraits<T> {};
namespace ledgerkeep::wire {
LK_NOT_A_WIRE_BODY(::ledgerkeep::BackupTarget)
LK_NOT_A_WIRE_BODY(::ledgerkeep::BackupResult)
LK_NOT_A_WIRE_BODY(::ledgerkeep::SnapshotInfo)
LK_NOT_A_WIRE_BODY(::ledgerkeep::SnapshotVerification)
LK_NOT_A_WIRE_BODY(::ledgerkeep::BackupVerifyResult)
LK_NOT_A_WIRE_BODY(::ledgerkeep::RestoreResult)
}  // namespace ledgerkeep::wire
#undef LK_NOT_A_WIRE_BODY
