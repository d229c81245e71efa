//! Ten colours a reader tells apart: matplotlib's tab10, the palette of the PyTorch reference,
//! so figures of the two implementations read the same way.

use plotters::style::RGBColor;

pub const DIGITS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// The colour of a label (labels above 9 wrap around).
pub fn digit(label: u8) -> RGBColor {
    DIGITS[label as usize % DIGITS.len()]
}
