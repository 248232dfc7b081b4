// Semantic checks of read_engine: files that pass the FlatBuffers verifier and the checksum but
// name things that do not exist. Each is refused with kCorruptFile naming the field.

#include <gtest/gtest.h>

#include <functional>

#include "format/checksum.h"
#include "format/engine_generated.h"
#include "format/engine_test_plans.h"

namespace kiln::format {
namespace {

using testing::make_rich_plan;
using testing::write_or_die;

// Reads `plan`'s file, expecting kCorruptFile with `part` in the message.
void expect_corrupt(const std::vector<std::byte>& file, const std::string& part) {
  auto read = read_engine(file);
  ASSERT_FALSE(read.ok()) << "expected an error naming " << part;
  EXPECT_EQ(read.status().code(), StatusCode::kCorruptFile) << read.status().toString();
  EXPECT_NE(read.status().message().find(part), std::string::npos) << read.status().message();
}

// The rich plan's file with `patch` applied to its tables and the checksum redone.
std::vector<std::byte> patched(const std::function<void(fb::Engine&)>& patch) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  patch(*fb::GetMutableSizePrefixedEngine(file.data()));
  Status sealed = seal_engine(file);
  EXPECT_TRUE(sealed.ok()) << sealed.toString();
  return file;
}

int binary_node(const fb::Engine& e) {
  for (flatbuffers::uoffset_t i = 0; i < e.sym_nodes()->size(); ++i) {
    if (e.sym_nodes()->Get(i)->kind() >= static_cast<uint8_t>(SymExpr::Kind::kAdd)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

TEST(EngineReaderFields, StepInputOutOfRangeNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.steps[0].inputs[1] = 57;
  expect_corrupt(write_or_die(owned.plan),
                 "steps[0] 'fc'.inputs[1]: tensor 57 out of range (the engine has 7 tensors)");
}

TEST(EngineReaderFields, StepOutputOutOfRangeNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.steps[2].outputs[0] = -1;
  expect_corrupt(write_or_die(owned.plan), "steps[2] 'out'.outputs[0]: tensor -1");
}

TEST(EngineReaderFields, BindingTensorOutOfRangeNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.outputs[0].tensor = 99;
  expect_corrupt(write_or_die(owned.plan), "outputs[0] 'y': tensor 99 out of range");
}

TEST(EngineReaderFields, TensorBindingOutOfRangeNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.tensors[0].binding = 1;  // one input
  expect_corrupt(write_or_die(owned.plan), "tensors[0] 'x'.binding: 1 out of range");
}

TEST(EngineReaderFields, TensorConstantOutOfRangeNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.tensors[2].constant = 2;  // two constants
  expect_corrupt(write_or_die(owned.plan), "tensors[2] 'idx'.constant: 2 out of range");
}

TEST(EngineReaderFields, ActivationOutsideTheArenaNamesTheField) {
  auto owned = make_rich_plan();
  owned.plan.arena_bytes = 65536;  // "scalar" sits at 65536
  expect_corrupt(write_or_die(owned.plan), "tensors[6] 'scalar': arena bytes [65536, +4)");
}

TEST(EngineReaderFields, ViewCycleIsRefused) {
  auto owned = make_rich_plan();
  owned.plan.tensors[3].role = TensorRole::kView;
  owned.plan.tensors[3].view_of = 4;  // and 4 is a view of 3
  expect_corrupt(write_or_die(owned.plan), "views form a cycle");
}

TEST(EngineReaderFields, ViewOfItselfIsRefused) {
  auto owned = make_rich_plan();
  owned.plan.tensors[4].view_of = 4;
  expect_corrupt(write_or_die(owned.plan), "tensors[4] 'h_view'.view_of: 4 out of range");
}

TEST(EngineReaderFields, NegativeTensorDimIsRefused) {
  auto owned = make_rich_plan();
  owned.plan.tensors[3].shape[1] = SymExpr(-16);
  expect_corrupt(write_or_die(owned.plan), "tensors[3] 'h'.shape[1]: negative dim -16");
}

TEST(EngineReaderFields, SymbolRangeOutOfOrderIsRefused) {
  auto owned = make_rich_plan();
  owned.plan.symbols[1].opt = 500;  // max 128
  expect_corrupt(write_or_die(owned.plan), "symbols[1] 'seq': range min 1 opt 500 max 128");
}

TEST(EngineReaderFields, DuplicateInputNameIsRefused) {
  auto owned = make_rich_plan();
  owned.plan.inputs.push_back(Binding{"x", 0});
  expect_corrupt(write_or_die(owned.plan), "inputs[1] 'x': name used twice");
}

TEST(EngineReaderFields, TensorDtypeOutOfRangeNamesTheField) {
  auto file = patched([](fb::Engine& e) {
    EXPECT_TRUE(e.mutable_tensors()->GetMutableObject(3)->mutate_dtype(200));
  });
  expect_corrupt(file, "tensors[3] 'h': dtype 200 out of range");
}

TEST(EngineReaderFields, TensorRoleOutOfRangeNamesTheField) {
  auto file = patched(
      [](fb::Engine& e) { EXPECT_TRUE(e.mutable_tensors()->GetMutableObject(0)->mutate_role(9)); });
  expect_corrupt(file, "tensors[0] 'x'.role: 9 out of range");
}

TEST(EngineReaderFields, OpKindOutOfRangeNamesTheField) {
  auto file = patched([](fb::Engine& e) {
    EXPECT_TRUE(e.mutable_steps()->GetMutableObject(1)->mutate_kind(60000));
  });
  expect_corrupt(file, "steps[1] 'view'.kind: op kind 60000 out of range");
}

TEST(EngineReaderFields, DeviceKindOutOfRangeNamesTheField) {
  auto file = patched([](fb::Engine& e) { EXPECT_TRUE(e.mutable_target()->mutate_kind(3)); });
  expect_corrupt(file, "target.kind: device kind 3 out of range");
}

TEST(EngineReaderFields, ConstantOutsideTheBlobNamesTheField) {
  auto file = patched([](fb::Engine& e) {
    EXPECT_TRUE(e.mutable_constants()->GetMutableObject(1)->mutate_offset(uint64_t{1} << 20));
  });
  expect_corrupt(file, "constants[1] 'idx': bytes [1048576, +40) outside the constant blob");
}

TEST(EngineReaderFields, ConstantSizeOverflowingTheBlobIsRefused) {
  auto file = patched([](fb::Engine& e) {
    EXPECT_TRUE(e.mutable_constants()->GetMutableObject(1)->mutate_size(~uint64_t{0}));
  });
  expect_corrupt(file, "constants[1] 'idx': bytes [256, +");
}

TEST(EngineReaderFields, MisalignedConstantOffsetIsRefused) {
  auto file = patched([](fb::Engine& e) {
    EXPECT_TRUE(e.mutable_constants()->GetMutableObject(1)->mutate_offset(8));
  });
  expect_corrupt(file, "constants[1] 'idx': offset 8 not a multiple of 256");
}

TEST(EngineReaderFields, NegativeConstantDimIsRefused) {
  auto file = patched([](fb::Engine& e) {
    e.mutable_constants()->GetMutableObject(0)->mutable_dims()->Mutate(0, -3);
  });
  expect_corrupt(file, "constants[0] 'w'.dims[0]: negative dim -3");
}

TEST(EngineReaderFields, ConstantSizeNotMatchingDimsIsRefused) {
  auto file = patched([](fb::Engine& e) {
    e.mutable_constants()->GetMutableObject(0)->mutable_dims()->Mutate(0, 4);
  });
  expect_corrupt(file, "constants[0] 'w'.size: 12 bytes, but float32 with these dims needs 16");
}

TEST(EngineReaderFields, SymNodePointingAtItselfIsRefused) {
  int node = -1;
  auto file = patched([&](fb::Engine& e) {
    node = binary_node(e);
    ASSERT_GE(node, 0);
    e.mutable_sym_nodes()->GetMutableObject(node)->mutate_lhs(node);
  });
  expect_corrupt(file, "sym_nodes[" + std::to_string(node) + "]: operand " + std::to_string(node) +
                           " must name an earlier node");
}

TEST(EngineReaderFields, SymNodeIndexPastThePoolIsRefused) {
  auto file = patched([](fb::Engine& e) {
    e.mutable_tensors()->GetMutableObject(0)->mutable_shape()->Mutate(1, 100000);
  });
  expect_corrupt(file, "tensors[0] 'x'.shape[1]: SymExpr node 100000 out of range");
}

TEST(EngineReaderFields, SymbolIdOutOfRangeIsRefused) {
  auto file = patched([](fb::Engine& e) {
    auto* nodes = e.mutable_sym_nodes();
    for (flatbuffers::uoffset_t i = 0; i < nodes->size(); ++i) {
      if (nodes->Get(i)->kind() == static_cast<uint8_t>(SymExpr::Kind::kSymbol)) {
        nodes->GetMutableObject(i)->mutate_symbol(2);
        return;
      }
    }
  });
  expect_corrupt(file, ": symbol 2 out of range (the engine has 2 symbols)");
}

TEST(EngineReaderFields, SymExprKindOutOfRangeIsRefused) {
  auto file =
      patched([](fb::Engine& e) { e.mutable_sym_nodes()->GetMutableObject(0)->mutate_kind(9); });
  expect_corrupt(file, "sym_nodes[0]: SymExpr kind 9 out of range");
}

TEST(EngineReaderFields, AttrTypeOutOfRangeIsRefused) {
  auto file = patched([](fb::Engine& e) {
    auto* attr = e.mutable_steps()->GetMutableObject(0)->mutable_attrs()->GetMutableObject(0);
    // No mutate_value_type is generated for union types: write the type byte in place.
    auto* table = reinterpret_cast<flatbuffers::Table*>(attr);
    *table->GetAddressOf(fb::Attr::VT_VALUE_TYPE) = 42;
  });
  expect_corrupt(file, "steps[0] 'fc' attribute 'b': attribute type 42 out of range");
}

TEST(EngineReaderFields, AttrDtypeOutOfRangeIsRefused) {
  auto file = patched([](fb::Engine& e) {
    auto* attrs = e.mutable_steps()->GetMutableObject(2)->mutable_attrs();
    auto* dtype = const_cast<fb::DTypeAttr*>(attrs->GetMutableObject(0)->value_as_DTypeAttr());
    EXPECT_TRUE(dtype->mutate_value(8));
  });
  expect_corrupt(file, "steps[2] 'out' attribute 'dtype': dtype 8 out of range");
}

}  // namespace
}  // namespace kiln::format
