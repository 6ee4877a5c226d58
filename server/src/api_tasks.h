// Task-related REST routes (private to the server module): the node task endpoints
// (api_tasks.cc) and the datastore endpoints that start tasks (api_tasks_datastore.cc), all
// sharing one TaskManager whose lifetime is that of the route table.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/server/task_manager.h"

namespace pbskit::server {

// POST verify, POST/GET gc, POST prune (dry run, synchronous task or use-task), POST
// prune-datastore below admin/datastore/{store}.
void AddDatastoreTaskRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks);

// Like PBS check_privs called inside a handler: the failure is a plain error (HTTP 400)
// "missing permissions '<A|B>' on '/<path>'", unlike the router's 403 "permission check
// failed".
Status CheckPrivsInHandler(ApiCall& call, const std::vector<std::string>& path, uint64_t privs,
                           bool partial);

// PBS's `lookup_datastore` with an operation: the configured store, refused while a
// maintenance mode forbids the operation ("datastore '<s>' is unavailable: <why>"; read-only
// mode only refuses writes).
Result<std::shared_ptr<DataStore>> OpenStoreFor(ApiCall& call, const std::string& name, bool write);

}  // namespace pbskit::server
