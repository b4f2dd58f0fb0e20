// RbdVolumeStore: a Ceph RBD pool (and namespace) as a VolumeStore
// (spec/ceph.md). Volume V = RBD image V; snapshot V@S = RBD snapshot S of
// image V; a clone = an RBD clone v2; notes, tags, creation time, uuids and
// the read-only flag = image metadata under "stack." (snapshots' under
// "stack.snap.<S>." of their image, RBD having no snapshot metadata).
//
// Writers: a writable open of a volume takes the image's exclusive lock
// (another writer gets Busy naming the lock owner) and keeps that one
// handle for every later call on the image (snapshot, metadata, resize),
// so our own calls never contend with our own lock. Rename and Delete
// close it first (Busy while a device from it is open).
//
// Thread-safety: every method from any thread (one mutex); devices as
// rbd::RbdDevice says.
#pragma once

#include <memory>
#include <string>

#include "stack/open_pool.h"
#include "stack/volume_store.h"

namespace stack::compose {

// Where the cluster is (from --ceph-conf / --ceph-id; empty: $CEPH_CONF,
// then $STACK_CEPH_ID (how the CLI passes --ceph-id to its children), then
// client.admin). Set once by the CLI before any store is opened.
struct CephOptions {
  std::string conf_path;
  std::string client_id;
  int timeout_seconds = 10;
  // Break another client's exclusive lock on an image we open for writing
  // (--ceph-break-lock: for a lock a dead client left).
  bool break_lock = false;
};
void SetCephOptions(const CephOptions& options);

// Opens `rbd:CEPHPOOL[/NAMESPACE]`. InvalidArgument for a malformed
// argument; IoError when the cluster does not answer in time; NotFound for
// a missing pool; Unsupported for a pool not enabled for rbd (or a build
// without librbd).
Result<std::shared_ptr<VolumeStore>> OpenRbdStore(const std::string& path, PoolAccess access);

}  // namespace stack::compose
