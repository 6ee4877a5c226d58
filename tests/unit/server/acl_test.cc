// acl.cfg parsing/writing byte for byte as PBS, and ACL evaluation with propagation, NoAccess
// and token/user intersection semantics.
#include "pbskit/server/acl.h"

#include <gtest/gtest.h>

namespace pbskit::server {
namespace {

std::string RolesAt(const AclTree& tree, const std::string& auth, const std::string& path) {
  auto id = Authid::Parse(auth);
  EXPECT_TRUE(id.ok());
  std::string out;
  for (const auto& [role, p] : tree.Roles(*id, SplitAclPath(path))) {
    out += (out.empty() ? "" : ",") + role;
  }
  return out;
}

TEST(AclTree, LineCompressionAsPbs) {
  auto tree = AclTree::Parse(
      "acl:0:/store/store2:user1@pbs:Admin\n"
      "acl:0:/store/store2:user2@pbs:Admin\n"
      "acl:0:/store/store2:user1@pbs:DatastoreBackup\n"
      "acl:0:/store/store2:user2@pbs:DatastoreBackup\n",
      "acl.cfg");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->ToString(), "acl:0:/store/store2:user1@pbs,user2@pbs:Admin,DatastoreBackup\n");
}

TEST(AclTree, WriteOrderNonPropagatingFirstChildrenSortedRootSkipped) {
  AclTree tree;
  tree.Insert("/datastore/store1", "backup@pbs!client", "DatastoreBackup", true);
  tree.Insert("/datastore/store1", "audit@pbs", "DatastoreAudit", false);
  tree.Insert("/", "root@pam", "Admin", true);
  tree.Insert("/", "admin@pbs", "Admin", true);
  tree.Insert("/datastore/a", "x@pbs", "DatastoreReader", true);
  EXPECT_EQ(tree.ToString(),
            "acl:1:/:admin@pbs:Admin\n"
            "acl:1:/datastore/a:x@pbs:DatastoreReader\n"
            "acl:0:/datastore/store1:audit@pbs:DatastoreAudit\n"
            "acl:1:/datastore/store1:backup@pbs!client:DatastoreBackup\n");
  auto again = AclTree::Parse(tree.ToString(), "acl.cfg");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToString(), tree.ToString());
}

TEST(AclTree, NoAccessReplacesOtherRoles) {
  auto tree = AclTree::Parse(
      "acl:1:/:user1@pbs:Admin\n"
      "acl:1:/storage:user1@pbs:NoAccess\n"
      "acl:1:/storage/store1:user1@pbs:DatastoreBackup\n",
      "acl.cfg");
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/"), "Admin");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/storage"), "NoAccess");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/storage/store1"), "DatastoreBackup");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/storage/store2"), "NoAccess");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/system"), "Admin");

  tree = AclTree::Parse(
      "acl:1:/:user1@pbs:Admin\n"
      "acl:0:/storage:user1@pbs:NoAccess\n"
      "acl:1:/storage/store1:user1@pbs:DatastoreBackup\n",
      "acl.cfg");
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/storage"), "NoAccess");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/storage/store2"), "Admin");
}

TEST(AclTree, TokensDoNotInheritUserEntries) {
  auto tree = AclTree::Parse("acl:1:/datastore:user1@pbs:DatastoreAdmin\n", "acl.cfg");
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(RolesAt(*tree, "user1@pbs", "/datastore/s1/ns1"), "DatastoreAdmin");
  EXPECT_EQ(RolesAt(*tree, "user1@pbs!tok", "/datastore/s1"), "");
}

TEST(AclTree, ParseErrorsNameTheLine) {
  auto bad = AclTree::Parse("\nacl:1:/:user1@pbs:Bogus\n", "acl.cfg");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unable to parse acl config 'acl.cfg', line 2 - unknown role 'Bogus'");
  EXPECT_FALSE(AclTree::Parse("acl:2:/:u@pbs:Admin\n", "f").ok());
  EXPECT_FALSE(AclTree::Parse("acl:1:/:u@pbs\n", "f").ok());
  EXPECT_FALSE(AclTree::Parse("acl:1:/:u ser@pbs:Admin\n", "f").ok());
}

TEST(Acl, PathsAndAuthids) {
  EXPECT_TRUE(CheckAclPath("/").ok());
  EXPECT_TRUE(CheckAclPath("/datastore/store1/a/b").ok());
  EXPECT_FALSE(CheckAclPath("/datastore/store1/a/b/c/d/e/f/g/h").ok());
  EXPECT_FALSE(CheckAclPath("/datastore/../x").ok());
  EXPECT_FALSE(CheckAclPath("datastore").ok());
  EXPECT_FALSE(CheckAclPath("/bogus").ok());
  EXPECT_TRUE(Authid::Parse("backup@pbs!client").ok());
  EXPECT_FALSE(Authid::Parse("backup@pbs!").ok());
  EXPECT_FALSE(Authid::Parse("back:up@pbs").ok());
  EXPECT_FALSE(Authid::Parse("backup").ok());
  EXPECT_FALSE(Authid::Parse(std::string("a\0b@pbs", 7)).ok());
  EXPECT_EQ(PrivilegeNames(*RolePrivileges("DatastoreReader")),
            (std::vector<std::string>{"Datastore.Audit", "Datastore.Read", "Datastore.Verify"}));
  EXPECT_EQ(*RolePrivileges("NoAccess"), 0u);
  EXPECT_FALSE(RolePrivileges("Bogus").has_value());
}

}  // namespace
}  // namespace pbskit::server
