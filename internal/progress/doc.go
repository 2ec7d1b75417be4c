// Package progress shows progress: a one-line bar on a terminal, plain
// periodic lines otherwise.
//
// On a terminal the bar is redrawn in place (carriage return, the line, then
// clear to end of line) and always fits the terminal's width, measured at
// every redraw (80 columns when it cannot be measured), so it never wraps.
// When the line is too narrow it drops whole parts of its text (the rate,
// the percentage, then the description's trailing words, ending it with "…",
// then the ETA, then the description) rather than squeezing the bar to
// nothing or cutting a word; the bar goes last, the count never. Output written through Bar.Println or Bar.Write appears
// above the bar, which is redrawn below it.
//
// Off a terminal (or with TERM=dumb) it writes a plain line every two
// seconds, with no escape codes. Colour is used only where Color allows it,
// so NO_COLOR turns it off.
package progress
