#include <cstring>

#include "format/checksum.h"
#include "format/engine_generated.h"

namespace kiln::format {

Status seal_engine(std::span<std::byte> file) {
  namespace fbs = flatbuffers;
  auto* data = reinterpret_cast<uint8_t*>(file.data());
  if (file.size() < 2 * sizeof(fbs::uoffset_t) + fbs::kFileIdentifierLength ||
      file.size() >= FLATBUFFERS_MAX_BUFFER_SIZE ||
      reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0 ||
      !fb::SizePrefixedEngineBufferHasIdentifier(data)) {
    return invalid_argument("seal_engine: not a whole engine file");
  }
  fbs::Verifier verifier(data, file.size(), kVerifierMaxDepth, kVerifierMaxTables);
  if (!fb::VerifySizePrefixedEngineBuffer(verifier)) {
    return invalid_argument("seal_engine: the file fails FlatBuffers verification");
  }
  fb::Engine* engine = fb::GetMutableSizePrefixedEngine(data);
  const uint8_t* field =
      reinterpret_cast<const fbs::Table*>(engine)->GetAddressOf(fb::Engine::VT_CHECKSUM);
  if (field == nullptr) return invalid_argument("seal_engine: the file has no checksum field");
  engine->mutate_checksum(engine_checksum(file, static_cast<size_t>(field - data)));
  return Status::Ok();
}

}  // namespace kiln::format
