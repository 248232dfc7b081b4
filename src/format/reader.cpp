// read_engine: the checks on the envelope, in the order engine_plan.h promises (size, identifier,
// recorded size, FlatBuffers verifier, format version, checksum), then decoding, semantic
// checks and the target check.

#include <cstdint>

#include "format/checksum.h"
#include "format/engine_generated.h"
#include "format/engine_plan.h"
#include "format/plan_decoder.h"

namespace kiln::format {
namespace {

namespace fbs = flatbuffers;

// Size prefix, root table offset, file identifier.
constexpr size_t kHeaderBytes = 2 * sizeof(fbs::uoffset_t) + fbs::kFileIdentifierLength;

Status truncated(const std::string& message) { return Status(StatusCode::kTruncated, message); }
Status corrupt(const std::string& message) { return Status(StatusCode::kCorruptFile, message); }

Status version_mismatch(uint32_t version) {
  return Status(StatusCode::kVersionMismatch, str("engine file format version ", version,
                                                  ", this Kiln reads version ", kFormatVersion));
}

fbs::Verifier::Options verifier_options() {
  fbs::Verifier::Options opts;
  opts.max_depth = kVerifierMaxDepth;
  opts.max_tables = kVerifierMaxTables;
  return opts;
}

// The format version of a file that fails verification, if its root table is readable: a
// future file whose layout this Kiln cannot verify should still be told apart from a corrupt
// one.
bool peek_version(const uint8_t* data, size_t size, uint32_t& version) {
  fbs::Verifier verifier(data, size, verifier_options());
  const fbs::uoffset_t root = verifier.VerifyOffset(sizeof(fbs::uoffset_t));
  if (root == 0) return false;
  const auto* table = reinterpret_cast<const fbs::Table*>(data + sizeof(fbs::uoffset_t) + root);
  if (!table->VerifyTableStart(verifier) ||
      !table->VerifyField<uint32_t>(verifier, fb::Engine::VT_FORMAT_VERSION, sizeof(uint32_t))) {
    return false;
  }
  version = table->GetField<uint32_t>(fb::Engine::VT_FORMAT_VERSION, 0);
  return true;
}

Status check_checksum(const fb::Engine& engine, std::span<const std::byte> file) {
  const auto* field =
      reinterpret_cast<const fbs::Table*>(&engine)->GetAddressOf(fb::Engine::VT_CHECKSUM);
  if (field == nullptr) return corrupt("engine file has no checksum");
  const auto at = static_cast<size_t>(field - reinterpret_cast<const uint8_t*>(file.data()));
  const uint64_t actual = engine_checksum(file, at);
  if (actual != engine.checksum()) {
    return corrupt(str("checksum mismatch (file records 0x", std::hex, engine.checksum(),
                       ", contents hash to 0x", actual, ")"));
  }
  return Status::Ok();
}

// The envelope checks; on success the verified root table and the file's own bytes (the
// recorded size, which may be less than what was given).
Result<std::span<const std::byte>> open_file(std::span<const std::byte> bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    return invalid_argument("engine bytes must start at an 8-byte aligned address");
  }
  if (bytes.size() < kHeaderBytes) {
    return truncated(str("engine file truncated: ", bytes.size(), " bytes, expected at least ",
                         kHeaderBytes, " (the header)"));
  }
  if (!fb::SizePrefixedEngineBufferHasIdentifier(data)) {
    return corrupt("not a Kiln engine file (no \"KILN\" identifier)");
  }
  const uint64_t total = uint64_t{fbs::ReadScalar<fbs::uoffset_t>(data)} + sizeof(fbs::uoffset_t);
  if (total > bytes.size()) {
    return truncated(str("engine file truncated: ", bytes.size(), " bytes, expected ", total));
  }
  if (total >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return corrupt(str("engine file records ", total, " bytes, past the 2 GiB format limit"));
  }
  const size_t size = static_cast<size_t>(total);
  fbs::Verifier verifier(data, size, verifier_options());
  if (!fb::VerifySizePrefixedEngineBuffer(verifier)) {
    uint32_t version = 0;
    // Only a plausible version counts: damage that leaves the root readable should not be
    // reported as "version 3735928559".
    if (peek_version(data, size, version) && version != kFormatVersion && version <= 0xFFFF) {
      return version_mismatch(version);
    }
    return corrupt("engine file fails FlatBuffers verification (damaged or not an engine)");
  }
  return bytes.first(size);
}

}  // namespace

Result<EnginePlan> read_engine(std::span<const std::byte> bytes, const ReadOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::span<const std::byte> file, open_file(bytes));
  const fb::Engine& engine = *fb::GetSizePrefixedEngine(file.data());
  if (engine.format_version() != kFormatVersion) return version_mismatch(engine.format_version());
  KILN_RETURN_IF_ERROR(check_checksum(engine, file));
  KILN_ASSIGN_OR_RETURN(EnginePlan plan, decode_plan(engine, file));
  KILN_RETURN_IF_ERROR(validate_plan(plan));
  if (options.check_target) KILN_RETURN_IF_ERROR(check_target(plan.target, options.expected));
  return plan;
}

}  // namespace kiln::format
