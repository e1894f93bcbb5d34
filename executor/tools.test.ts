import { describe, expect, it } from 'vitest';
import { TOOLS_DIR_LABEL as IMAGE_TOOLS_DIR_LABEL, TOOLS_LABEL as IMAGE_TOOLS_LABEL } from '../images/lib/tools.ts';
import { exposedTools, NO_TOOLS, toolMasks, toolsFromLabels, TOOLS_DIR_LABEL, TOOLS_LABEL } from './tools.ts';

const labels = (tools: string, dir = '/opt/tools') => ({ [TOOLS_LABEL]: tools, [TOOLS_DIR_LABEL]: dir });

describe('image tools', () => {
  it('reads the labels the image build writes', () => {
    expect([TOOLS_LABEL, TOOLS_DIR_LABEL]).toEqual([IMAGE_TOOLS_LABEL, IMAGE_TOOLS_DIR_LABEL]);
    expect(toolsFromLabels('img', labels('jq,curl,sh'))).toEqual({ dir: '/opt/tools', names: ['curl', 'jq', 'sh'] });
    expect(toolsFromLabels('img', {})).toBe(NO_TOOLS);
    expect(toolsFromLabels('img', null)).toBe(NO_TOOLS);
  });

  it.each([
    ['a path as a name', labels('jq,../bin')],
    ['an empty name', labels('jq,,curl')],
    ['a relative directory', labels('jq', 'opt/tools')],
    ['a directory climbing out', labels('jq', '/opt/../usr')],
    ['no directory', { [TOOLS_LABEL]: 'jq' }],
  ])('refuses labels with %s rather than leave a tool visible', (_name, given) => {
    expect(() => toolsFromLabels('img', given)).toThrow(/img/);
  });

  it.each([
    [[], ['/opt/tools/curl', '/opt/tools/jq', '/opt/tools/sh'], []],
    [['jq'], ['/opt/tools/curl', '/opt/tools/sh'], ['jq']],
    [['jq', 'sh', 'ffmpeg'], ['/opt/tools/curl'], ['jq', 'sh']],
    [['JQ', '/opt/tools/curl', 'curl/'], ['/opt/tools/curl', '/opt/tools/jq', '/opt/tools/sh'], []],
  ])('with allowedBinaries %j hides %j and shows %j', (allowed, masks, shown) => {
    const tools = toolsFromLabels('img', labels('jq,curl,sh'));
    expect(toolMasks(tools, allowed)).toEqual(masks);
    expect(exposedTools(tools, allowed)).toEqual(shown);
  });
});
