//! State access: `read_state(input)` and `write_state(input, data)` (no outputs), the form
//! coremltools serialises `coreml_update_state` to.

use super::{FnEmitter, R};
use crate::ir::Node;

impl FnEmitter<'_> {
    pub(super) fn read_state(&mut self, node: &Node) -> R {
        let s = self.operand(node.operands[0])?;
        self.emit_result(node, "read_state", vec![("input", vec![s])])
    }

    pub(super) fn write_state(&mut self, node: &Node) -> R {
        let s = self.operand(node.operands[0])?;
        let v = self.operand(node.operands[1])?;
        let name = self.fresh(&format!("{s}_write_state"));
        self.push_op("write_state", &name, vec![("input", vec![s]), ("data", vec![v])], vec![]);
        Ok(())
    }
}
