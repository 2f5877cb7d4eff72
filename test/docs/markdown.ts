/** Reading the reference docs: fenced code blocks, sections and table cells. */
import { readFileSync } from 'node:fs';

export interface CodeBlock {
  language: string;
  /** The word after the language (```json request → "request"). */
  role: string;
  text: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
}

export function readDoc(name: string): string {
  return readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
}

export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const fence = /^```(\S*)(?:[ \t]+(\S+))?[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (const match of markdown.matchAll(fence)) {
    const line = markdown.slice(0, match.index).split('\n').length;
    blocks.push({ language: match[1] ?? '', role: match[2] ?? '', text: match[3] ?? '', line });
  }
  return blocks;
}

/** Sections keyed by heading text (without the #s), each holding the text up to the next heading of any level. */
export function sections(markdown: string): Map<string, string> {
  const result = new Map<string, string>();
  const parts = markdown.split(/^(#{1,6} .*)$/m);
  for (let i = 1; i < parts.length; i += 2) result.set(parts[i]!.replace(/^#+ /, '').trim(), parts[i + 1] ?? '');
  return result;
}

/** The first cell of every table row (backticks kept), header and rule rows excluded. */
export function firstTableCells(markdown: string): string[] {
  const cells: string[] = [];
  const lines = markdown.split('\n');
  lines.forEach((line, i) => {
    if (!line.startsWith('|') || /^\|[-| :]+\|$/.test(line)) return;
    if (lines[i + 1] !== undefined && /^\|[-| :]+\|$/.test(lines[i + 1]!)) return;
    cells.push(line.split('|')[1]!.trim());
  });
  return cells;
}

/** Every `code` span of a text. */
export function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
}
