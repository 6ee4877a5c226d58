// Orchestrates a checker run: pbs3to4's sections first, then pbskit's own.
#include "pbskit/checker/checker.h"

#include "check_context.h"

namespace pbskit::checker {

Result<Report> RunChecks(const CheckOptions& options) {
  CheckContext ctx(options);
  PBSKIT_RETURN_IF_ERROR(CheckPackages(ctx));
  PBSKIT_RETURN_IF_ERROR(CheckMisc(ctx));
  ctx.report.Header("DATASTORE AND CONFIGURATION CHECKS");
  PBSKIT_RETURN_IF_ERROR(CheckConfigFiles(ctx));
  PBSKIT_RETURN_IF_ERROR(CheckDatastores(ctx));
  PBSKIT_RETURN_IF_ERROR(CheckJobsAndRemotes(ctx));
  return std::move(ctx.report);
}

}  // namespace pbskit::checker
